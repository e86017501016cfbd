from django.db import migrations

# Portable SQL (PostgreSQL and SQLite): at province scale a data migration row by row in Python
# would take hours; these are two statements.
DROP_CURRENT_COPIES = """
    DELETE FROM fhir_resourceversion
    WHERE EXISTS (
        SELECT 1 FROM fhir_resource r
        WHERE r.id = fhir_resourceversion.resource_id
          AND r.version_id = fhir_resourceversion.version_id
    )
"""
RESTORE_CURRENT_COPIES = """
    INSERT INTO fhir_resourceversion (resource_id, version_id, last_updated, deleted, method, body)
    SELECT id, version_id, last_updated, deleted,
           CASE WHEN deleted THEN 'DELETE' WHEN version_id = 1 THEN 'POST' ELSE 'PUT' END,
           body
    FROM fhir_resource
"""


class Migration(migrations.Migration):
    """The history keeps the versions that were replaced; the current one lives in `Resource`.

    Every stored resource had its current body twice, once in each table: a fifth of the
    database and one more COPY of every reading's JSON. Nothing in the schema changes; the
    copies of current versions are dropped (and put back on reverse).
    """

    dependencies = [
        ("fhir", "0008_identifier_unique_by_value"),
    ]

    operations = [
        migrations.RunSQL(DROP_CURRENT_COPIES, reverse_sql=RESTORE_CURRENT_COPIES),
    ]
