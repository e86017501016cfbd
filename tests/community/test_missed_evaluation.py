"""A reading whose evaluation task was lost (broker restart, worker killed before the ack) is
still examined: the sweep finds vitals rows never evaluated and runs the rules over them."""

from __future__ import annotations

import json
from datetime import timedelta

from django.utils import timezone

from community import alerting
from community.models import Alert
from fhir.models import VitalSign
from tests.conftest import CHEN
from tests.fhir import bundles


def test_sweep_evaluates_readings_whose_task_was_lost(
    client, bridge_token, django_capture_on_commit_callbacks
):
    # Committed, but the on-commit hook that queues evaluation never ran: as if the broker lost it.
    response = client.post(
        "/fhir/",
        json.dumps(bundles.upload(CHEN, 1, systolic=199)),
        content_type="application/fhir+json",
        HTTP_AUTHORIZATION=f"Bearer {bridge_token}",
    )
    assert response.status_code == 200
    assert not Alert.objects.exists()
    assert VitalSign.objects.filter(evaluated_at__isnull=True).count() == 3
    assert alerting.evaluate_missed() == 0  # too recent: its task may still be on its way
    VitalSign.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    assert alerting.evaluate_missed() == 3
    alert = Alert.objects.get(rule="threshold:systolic_bp")
    assert alert.severity == "critical"
    assert not VitalSign.objects.filter(evaluated_at__isnull=True).exists()
    assert alerting.evaluate_missed() == 0  # nothing twice


def test_the_normal_path_marks_readings_evaluated(
    client, bridge_token, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/fhir/",
            json.dumps(bundles.upload(CHEN, 2)),
            content_type="application/fhir+json",
            HTTP_AUTHORIZATION=f"Bearer {bridge_token}",
        )
    assert VitalSign.objects.count() == 6
    assert not VitalSign.objects.filter(evaluated_at__isnull=True).exists()
