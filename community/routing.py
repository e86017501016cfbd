"""WebSocket routes of the alert streams, gathered by config.routing."""

from django.urls import path

from community.consumers import HospitalAlertConsumer, HubAlertConsumer

websocket_urlpatterns = [
    path("ws/hub/<slug:hub_code>/", HubAlertConsumer.as_asgi()),
    path("ws/hospital/<slug:hospital_code>/", HospitalAlertConsumer.as_asgi()),
]
