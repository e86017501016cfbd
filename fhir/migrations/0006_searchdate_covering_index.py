from django.db import migrations, models


class Migration(migrations.Migration):
    """The patient/date index carries "end" and the resource id, so a date search reads no heap
    rows to test the range (PostgreSQL; other databases create it without INCLUDE).
    The new index is built before the old one is dropped, so searches always have one."""

    dependencies = [
        ("clinic", "0004_patient_merged_into_matchreview_patientmerge_and_more"),
        ("fhir", "0005_searchdate_patient"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="searchdate",
            index=models.Index(
                fields=["resource_type", "param", "patient", "start"],
                include=("end", "resource"),
                name="searchdate_patient_start_cov",
            ),
        ),
        migrations.RemoveIndex(
            model_name="searchdate",
            name="searchdate_patient_start",
        ),
    ]
