from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CommunityConfig(AppConfig):
    name = "community"
    verbose_name = _("Community: hubs and alerts")

    def ready(self) -> None:
        from community.receivers import queue_evaluation
        from fhir.signals import vitals_stored

        vitals_stored.connect(queue_evaluation, dispatch_uid="community.queue_evaluation")
