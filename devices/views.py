"""The bridge's status report (outbox depth, monitors' connection and battery)."""

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from devices.health import record_status
from devices.models import Bridge


@csrf_exempt
@require_POST
def bridge_status(request: HttpRequest) -> JsonResponse:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    bridge = Bridge.authenticate(token.strip()) if scheme.lower() == "bearer" else None
    if bridge is None:
        return JsonResponse({"error": "bridge token refused"}, status=401)
    try:
        report = json.loads(request.body)
    except (ValueError, RecursionError):
        return JsonResponse({"error": "the body is not valid JSON"}, status=400)
    if not isinstance(report, dict):
        return JsonResponse({"error": "the body must be a JSON object"}, status=400)
    record_status(bridge, report)
    return JsonResponse({"ok": True})
