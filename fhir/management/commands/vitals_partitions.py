"""`python manage.py vitals_partitions [--ahead N]`: create the missing monthly partitions of the
vitals table (beat does this every six hours) and list them with their row counts."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import connection

from fhir import partitions


class Command(BaseCommand):
    help = "Create missing monthly partitions of the vitals table and list them (PostgreSQL)."

    def add_arguments(self, parser):
        parser.add_argument("--ahead", type=int, default=3, help="months ahead to create (3)")
        parser.add_argument("--behind", type=int, default=1, help="past months to create (1)")

    def handle(self, *args, ahead: int, behind: int, **options):
        if not partitions.is_partitioned():
            self.stdout.write(f"{partitions.TABLE} is not partitioned on {connection.vendor}")
            return
        for name in partitions.ensure_partitions(ahead=ahead, behind=behind):
            self.stdout.write(self.style.SUCCESS(f"created {name}"))
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            for name in partitions.existing_partitions():
                cursor.execute(f"SELECT COUNT(*) FROM {quote(name)}")
                self.stdout.write(f"{name}: {cursor.fetchone()[0]} rows")
