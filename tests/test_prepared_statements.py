"""Statements are prepared only when DATABASE_PREPARE_THRESHOLD asks for it.

Django leaves psycopg's statement preparation off unless OPTIONS set `prepare_threshold`, and
the default keeps it so: PostgreSQL may give a prepared statement its generic plan after a few
runs, and the Observation search's generic plan took 15 s against 12 ms for the custom one with
1,000,000 stored (docs/scaling.md). This fails if preparation is turned on by default.
"""

from django.db import connection

from clinic.models import Patient


def test_repeated_queries_are_not_prepared_by_default(demo):
    def look_up() -> list[int]:
        return list(Patient.objects.filter(resident_id="nobody").values_list("pk", flat=True))

    for _ in range(12):  # past psycopg's threshold and PostgreSQL's five custom plans
        look_up()
    if connection.vendor == "postgresql":
        assert connection.settings_dict["OPTIONS"]["prepare_threshold"] is None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                ['%FROM "clinic_patient" WHERE "clinic_patient"."resident_id" = $1%'],
            )
            assert cursor.fetchone()[0] == 0
    else:  # SQLite has no server to prepare on, and Django's backend takes no such option
        assert "prepare_threshold" not in connection.settings_dict.get("OPTIONS", {})
