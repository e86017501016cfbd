from django.core.management.base import BaseCommand, CommandError

from clinic.lookup import find_patient
from devices.models import Bridge


class Command(BaseCommand):
    help = "Register a home bridge for a household; prints the new token alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument(
            "--patient",
            action="append",
            required=True,
            help="Resident identity number (or other identifier) of a household patient; repeat for each.",
        )
        parser.add_argument(
            "--name", default="", help="A name for the bridge (default: from the patients)."
        )

    def handle(self, *args, patient: list[str], name: str, **options):
        patients = []
        for identifier in patient:
            found = find_patient(identifier)
            if found is None:
                raise CommandError(f"no patient with identifier {identifier!r}")
            patients.append(found)
        bridge = Bridge(name=name or "home bridge: " + ", ".join(p.name for p in patients))
        token = bridge.issue_token()
        bridge.save()
        bridge.patients.set(patients)
        self.stdout.write(
            f"bridge {bridge.pk} registered for {', '.join(p.name for p in patients)}"
        )
        self.stdout.write("the token is shown once; configure it on the bridge now:")
        self.stdout.write(token)
