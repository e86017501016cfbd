"""A query a connection repeats is parsed and planned once (DATABASE_PREPARE_THRESHOLD).

Django leaves psycopg's statement preparation off unless OPTIONS ask for it; binding the
parameters on the server alone prepared nothing, and PostgreSQL planned every statement of
every upload again.
"""

from django.conf import settings
from django.db import connection

from clinic.models import Patient


def test_a_repeated_query_is_prepared(demo):
    def look_up() -> list[int]:
        return list(Patient.objects.filter(resident_id="nobody").values_list("pk", flat=True))

    threshold = settings.DATABASES["default"]["OPTIONS"].get("prepare_threshold") or 5
    for _ in range(threshold + 1):  # psycopg prepares on the run after `threshold` runs
        look_up()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            before = cursor.fetchone()[0]
            look_up()
            cursor.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                [
                    'SELECT "clinic_patient"."id" AS "pk" FROM "clinic_patient" WHERE "clinic_patient"."resident_id" = $1%'
                ],
            )
            assert cursor.fetchone()[0] == 1
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            assert cursor.fetchone()[0] == before  # run again: the same statement, no new one
    else:  # SQLite has no server to prepare on, and Django's backend takes no such option
        assert "prepare_threshold" not in connection.settings_dict.get("OPTIONS", {})
