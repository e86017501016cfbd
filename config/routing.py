"""WebSocket routes. Each app that pushes lists its own; this module only gathers them."""

from community.routing import websocket_urlpatterns as community_routes

websocket_urlpatterns: list = [*community_routes]
