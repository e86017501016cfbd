"""Partition the vitals table by month on PostgreSQL (a no-op on SQLite); see fhir/partitions.py."""

from django.db import migrations

from fhir import partitions


def forwards(apps, schema_editor):
    partitions.partition_table(schema_editor)
    partitions.ensure_partitions()


class Migration(migrations.Migration):
    dependencies = [("fhir", "0003_vitals_evaluated_at")]

    # Backwards leaves the table partitioned: the earlier schema reads and writes it unchanged.
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
