"""`python manage.py verify_audit`: walk the audit hash chain; exit 1 naming the first broken
record (edited, deleted or inserted out of order), 0 when every link holds."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from fhir.audit import verify_chain


class Command(BaseCommand):
    help = "Verify the hash chain of the audit trail (fhir.models.AuditEvent)."

    def handle(self, *args, **options):
        count, broken = verify_chain()
        if broken is not None:
            raise CommandError(
                f"audit chain broken at AuditEvent {broken} (record {count} in order): its hash "
                "or its link to the record before does not match; it or an earlier record was "
                "changed or removed"
            )
        self.stdout.write(self.style.SUCCESS(f"audit chain intact: {count} records verified"))
