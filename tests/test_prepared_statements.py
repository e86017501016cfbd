"""Prepared statements, with generic plans only where they are safe.

A statement a connection repeats is prepared (DATABASE_PREPARE_THRESHOLD). Connections plan
each run for its values (`plan_cache_mode=force_custom_plan`): after a few runs PostgreSQL gave
the prepared Observation search its generic plan, 15 s where the custom one takes 12 ms with
1,000,000 stored. The ingest and evaluation transactions, whose statements are key look-ups and
inserts, allow generic plans until they end (`fhir.bulk.allow_generic_plans`).
"""

import json

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from clinic.models import Patient
from fhir.bulk import allow_generic_plans
from tests.conftest import CHEN
from tests.fhir import bundles


def _plan_cache_mode() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        return cursor.fetchone()[0]


def test_a_repeated_query_is_prepared(demo):
    def look_up() -> list[int]:
        return list(Patient.objects.filter(resident_id="nobody").values_list("pk", flat=True))

    for _ in range(12):  # past psycopg's threshold
        look_up()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                ['%FROM "clinic_patient" WHERE "clinic_patient"."resident_id" = $1%'],
            )
            assert cursor.fetchone()[0] >= 1
    else:  # SQLite has no server to prepare on, and Django's backend takes no such option
        assert "prepare_threshold" not in connection.settings_dict.get("OPTIONS", {})


@pytest.mark.django_db(transaction=True)
def test_generic_plans_only_until_the_write_transaction_ends():
    if connection.vendor != "postgresql":
        with transaction.atomic():
            allow_generic_plans()  # nothing to allow: no statement is prepared
        return
    assert _plan_cache_mode() == "force_custom_plan"
    with transaction.atomic():
        allow_generic_plans()
        assert _plan_cache_mode() == "auto"
    assert _plan_cache_mode() == "force_custom_plan"
    with pytest.raises(RuntimeError), transaction.atomic():
        allow_generic_plans()
        raise RuntimeError("rolled back")
    assert _plan_cache_mode() == "force_custom_plan"


def test_an_upload_allows_generic_plans_inside_its_transaction(bridge_client):
    body = json.dumps(bundles.upload(CHEN, 2))
    with CaptureQueriesContext(connection) as queries:
        response = bridge_client.post("/fhir/", body, content_type="application/fhir+json")
    assert response.status_code == 200
    statements = [q["sql"] for q in queries.captured_queries]
    allowed = [i for i, sql in enumerate(statements) if "plan_cache_mode" in sql]
    if connection.vendor == "postgresql":
        assert len(allowed) == 1
        first_write = next(i for i, sql in enumerate(statements) if sql.startswith("COPY"))
        assert allowed[0] < first_write
    else:
        assert allowed == []


def test_the_plan_mode_is_added_to_options_the_database_url_carries():
    """settings: a DATABASE_URL's own `options` (here a statement timeout) are kept."""
    import os
    import subprocess
    import sys

    url = "postgres://u@127.0.0.1:5432/db?options=-c%20statement_timeout%3D60000"
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DATABASES['default']['OPTIONS']['options'])"
    )
    env = dict(os.environ, DATABASE_URL=url, DATABASE_PREPARE_THRESHOLD="5")
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "-c statement_timeout=60000 -c plan_cache_mode=force_custom_plan"
