from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ClinicConfig(AppConfig):
    name = "clinic"
    verbose_name = _("Clinic: hospitals, practitioners, patients")

    def ready(self) -> None:
        from clinic import lockout  # noqa: F401  (connects the login-failure signal receivers)
