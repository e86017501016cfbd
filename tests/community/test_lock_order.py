"""Lock order between rule evaluation and uploads, on real PostgreSQL with two connections.

Under load (bench/bench_alerts.py) an evaluation holding its patient's row FOR UPDATE waited for
the audit chain's lock while an upload holding that lock waited, at commit, for FOR KEY SHARE
on the same patient row: PostgreSQL broke the deadlock by failing one of them. An evaluation
now locks FOR NO KEY UPDATE, and an upload runs its foreign-key checks before it takes the
audit lock; these tests hold one side and show the other goes through.
"""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connection, transaction

from clinic.models import Patient
from community import alerting
from tests.conftest import CHEN
from tests.fhir import bundles

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


class _HeldInOtherConnection:
    """Run `take` in a transaction on another thread's connection and hold it until exit."""

    def __init__(self, take) -> None:
        self.take = take
        self.held = threading.Event()
        self.release = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        try:
            with transaction.atomic():
                self.take()
                self.held.set()
                self.release.wait(30)
        except BaseException as exc:  # reported by __exit__ in the test's thread
            self.error = exc
            self.held.set()
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        assert self.held.wait(10)
        assert self.error is None, self.error
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.thread.join(30)


def _upload(client, token: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '3s'")  # a wait here would be the old deadlock's half
    try:
        response = client.post(
            "/fhir/",
            json.dumps(bundles.upload(CHEN, 2, day="2026-10-02")),
            content_type="application/fhir+json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    return response.status_code


def test_an_upload_commits_while_an_evaluation_holds_its_patients_lock(client, bridge_token):
    chen = Patient.objects.get(resident_id=CHEN)
    with _HeldInOtherConnection(lambda: alerting.lock_patient_for_evaluation(chen.pk)):
        assert _upload(client, bridge_token) == 200


def test_evaluations_of_one_patient_still_take_turns(bridge_token):
    """The evaluation's lock is still exclusive among evaluations of the same patient."""
    chen = Patient.objects.get(resident_id=CHEN)
    with (
        _HeldInOtherConnection(lambda: alerting.lock_patient_for_evaluation(chen.pk)),
        transaction.atomic(),
    ):
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '500ms'")
        with pytest.raises(Exception, match="lock timeout"):
            alerting.lock_patient_for_evaluation(chen.pk)
