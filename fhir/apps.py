from pathlib import Path

from django.apps import AppConfig


class FhirConfig(AppConfig):
    """An explicit path: the package is a namespace shared with `fhir.resources`."""

    name = "fhir"
    label = "fhir"
    verbose_name = "FHIR shared record"
    path = str(Path(__file__).resolve().parent)
    default_auto_field = "django.db.models.BigAutoField"
