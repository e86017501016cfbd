"""Shared builders for the alert tests: demo people, stored vitals, findings, sockets."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.utils import timezone

from clinic.models import Patient
from clinic.rules import Finding
from community.models import DispatchHub
from community.routing import websocket_urlpatterns
from fhir.models import Resource, VitalSign

CHEN = "440106195803120021"  # 陈美玲, hypertension, 石牌 (Tianhe hub), escalates to zsy
LI = "440304196207150032"  # 李建国, COPD + heart failure, 莲花 (Futian hub)

ws_app = URLRouter(websocket_urlpatterns)


def user(username: str):
    return get_user_model().objects.get(username=username)


def patient(resident_id: str = CHEN) -> Patient:
    return Patient.objects.get(resident_id=resident_id)


def hub(code: str = "hub-tianhe") -> DispatchHub:
    return DispatchHub.objects.get(code=code)


def store_vitals(
    who: Patient,
    vital: str,
    values: Iterable[float],
    *,
    start: datetime | None = None,
    every: timedelta = timedelta(minutes=5),
) -> list[int]:
    """VitalSign rows (each with its Observation) as the FHIR store writes them; returns ids."""
    start = start or timezone.now() - timedelta(hours=1)
    ids = []
    for i, value in enumerate(values):
        observation = Resource.objects.create(
            resource_type="Observation",
            logical_id=uuid.uuid4().hex,
            last_updated=timezone.now(),
            body={"resourceType": "Observation"},
            patient=who,
        )
        row = VitalSign.objects.create(
            patient=who,
            observation=observation,
            vital=vital,
            effective_at=start + i * every,
            value=value,
            unit="",
        )
        ids.append(row.pk)
    return ids


def finding(
    rule: str = "threshold:systolic_bp",
    *,
    severity: str = "critical",
    values: tuple[float, ...] = (185.0,),
    reading_ids: tuple[str, ...] | None = None,
) -> Finding:
    return Finding(
        rule=rule,
        vital=rule.split(":", 1)[1] if ":" in rule else None,
        severity=severity,
        message=f"{rule} {values}",
        values=values,
        reading_ids=reading_ids if reading_ids is not None else (str(uuid.uuid4().int % 10**9),),
    )


def socket(path: str, who) -> WebsocketCommunicator:
    """A communicator whose scope carries ``who`` as the session user would."""
    communicator = WebsocketCommunicator(ws_app, path)
    communicator.scope["user"] = who
    return communicator


async def connect_and_subscribe(path: str, who, last_seq: int | None = 0) -> WebsocketCommunicator:
    communicator = socket(path, who)
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "subscribe", "last_seq": last_seq})
    subscribed = await communicator.receive_json_from(timeout=10)
    assert subscribed["type"] == "subscribed", subscribed
    return communicator
