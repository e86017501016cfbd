from django.core.management.base import BaseCommand

from community import demo_data
from community.seed import seed_demo


class Command(BaseCommand):
    help = "Create the pilot's demo hospitals, hubs, staff and patients (idempotent)."

    def handle(self, *args, **options):
        summary = seed_demo()
        self.stdout.write(
            f"demo data: {summary.hospitals} hospitals, {summary.communities} communities, "
            f"{summary.hubs} hubs, {summary.staff} staff, {summary.patients} patients "
            f"({summary.created} created now)"
        )
        self.stdout.write(f"demo logins (password for all: {demo_data.DEMO_PASSWORD}):")
        self.stdout.write("  admin                     administrator -> /admin/")
        for username, name, role, place, _lead in (
            demo_data.STAFF[:2] + demo_data.STAFF[3:4] + demo_data.STAFF[8:9]
        ):
            self.stdout.write(f"  {username:<25} {name} ({role}, {place})")
        for known in demo_data.KNOWN_PATIENTS:
            self.stdout.write(f"  {known[0]:<25} {known[1]} (patient)")
