from django.db import migrations, models


class Migration(migrations.Migration):
    """Lead the identifiers' unique index with the value (see `ResourceIdentifier`).

    The new constraint is built before the old one is dropped, so uniqueness, which makes
    uploads idempotent, holds throughout.
    """

    dependencies = [
        ("fhir", "0007_vitals_patient_newest"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="resourceidentifier",
            constraint=models.UniqueConstraint(
                fields=("value", "system", "resource_type"), name="unique_identifier_by_value"
            ),
        ),
        migrations.RemoveConstraint(
            model_name="resourceidentifier",
            name="unique_business_identifier",
        ),
    ]
