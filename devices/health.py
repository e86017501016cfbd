"""Device health as data: what each upload says about a bridge and its monitors."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from devices.models import Bridge, Monitor

EUI64_SYSTEM = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
BATTERY_MDC = "67996"


BLE_ADDRESS_SYSTEM = "urn:sg:ble-address"


def _device_identifier(device: dict) -> str | None:
    """The Bluetooth address when the bridge sent one (its status reports use it), else the first."""
    identifiers = [i for i in device.get("identifier", []) or [] if i.get("value")]
    for ident in identifiers:
        if ident.get("system") == BLE_ADDRESS_SYSTEM:
            return str(ident["value"])[:64]
    return str(identifiers[0]["value"])[:64] if identifiers else None


def record_upload(bridge: Bridge, bundle: dict) -> None:
    """Note the upload time and, per monitor, the newest reading and battery level seen."""
    now = timezone.now()
    urls: dict[str, str] = {}
    gateway_ids = set()
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict)]
    for entry in entries:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "Device":
            ident = _device_identifier(resource)
            if ident:
                urls[entry.get("fullUrl", "")] = ident
                if any(
                    "gateway" in str(t).lower() for t in resource.get("type", {}).get("coding", [])
                ):
                    gateway_ids.add(ident)
    latest: dict[str, datetime] = {}
    battery: dict[str, int] = {}
    for entry in entries:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") != "Observation":
            continue
        ident = urls.get((resource.get("device") or {}).get("reference", ""))
        if not ident:
            continue
        when = resource.get("effectiveDateTime")
        try:
            at = datetime.fromisoformat(when.replace("Z", "+00:00")) if when else now
        except ValueError:
            continue
        codes = {c.get("code") for c in resource.get("code", {}).get("coding", [])}
        if BATTERY_MDC in codes and resource.get("valueQuantity", {}).get("value") is not None:
            battery[ident] = int(resource["valueQuantity"]["value"])
        elif ident not in latest or at > latest[ident]:
            latest[ident] = at
    for ident in set(latest) | set(battery):
        monitor, _ = Monitor.objects.get_or_create(bridge=bridge, identifier=ident)
        fields = ["last_seen"]
        monitor.last_seen = now
        if ident in latest and (
            monitor.last_reading_at is None or latest[ident] > monitor.last_reading_at
        ):
            monitor.last_reading_at = latest[ident]
            fields.append("last_reading_at")
        if ident in battery:
            monitor.battery = battery[ident]
            fields.append("battery")
        monitor.save(update_fields=fields)
    Bridge.objects.filter(pk=bridge.pk).update(last_upload_at=now)


def record_status(bridge: Bridge, report: dict) -> None:
    """The bridge's own report: outbox depth, last upload and error, monitors' connection state."""
    depth = report.get("outbox_depth")
    bridge.outbox_depth = depth if isinstance(depth, int) and depth >= 0 else None
    bridge.last_status = {
        k: report.get(k)
        for k in (
            "outbox_depth",
            "oldest_pending_age_s",
            "last_upload_at",
            "last_error",
            "quarantined",
        )
    }
    bridge.save(update_fields=["outbox_depth", "last_status"])
    for item in report.get("monitors", []) or []:
        if not isinstance(item, dict):
            continue
        ident = str(item.get("id") or item.get("address") or "")[:64]
        if not ident:
            continue
        monitor, _ = Monitor.objects.get_or_create(bridge=bridge, identifier=ident)
        monitor.kind = str(item.get("kind") or monitor.kind)[:40]
        monitor.connected = bool(item.get("connected"))
        battery = item.get("battery")
        if isinstance(battery, int) and 0 <= battery <= 100:
            monitor.battery = battery
        monitor.last_seen = timezone.now()
        monitor.save()
