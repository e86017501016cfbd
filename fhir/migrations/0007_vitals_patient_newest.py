import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Index the patient's vitals with their time, and drop the index on the patient alone.

    Rule evaluation starts from the patient's newest reading; with the index on the patient
    alone PostgreSQL read every reading of the patient to find it, on every upload. The new
    index is built before the old one is dropped, so the foreign key always has one.
    """

    dependencies = [
        ("fhir", "0006_searchdate_covering_index"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="vitalsign",
            index=models.Index(fields=["patient", "-effective_at"], name="vitals_patient_newest"),
        ),
        migrations.AlterField(
            model_name="vitalsign",
            name="patient",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="vitals",
                to="clinic.patient",
            ),
        ),
    ]
