"""WebSocket routes. Each app that pushes lists its own; this module only gathers them."""

websocket_urlpatterns: list = []
