"""Races on PostgreSQL: one open alert per patient and rule, gap-free stream numbers."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection, connections

from clinic.models import Patient
from community import actions
from community.models import Alert, AlertEvent
from tests.community.helpers import CHEN, finding, patient

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def run_together(jobs: list[Callable[[], object]]) -> list[object]:
    """Start every job at the same instant, each on its own thread and database connection."""
    barrier = threading.Barrier(len(jobs))
    results: list[object] = [None] * len(jobs)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = jobs[i]()
        except Exception as exc:  # surfaced by the assertions below
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_racing_raises_of_one_rule_make_one_alert(demo):
    assert connection.vendor == "postgresql"
    chen = patient(CHEN).pk
    jobs = [
        (lambda n=n: actions.do_raise_or_update_alert(chen, finding(reading_ids=(str(n),))))
        for n in range(6)
    ]
    results = run_together(jobs)
    assert not [r for r in results if isinstance(r, Exception)], results
    alerts = Alert.objects.filter(patient_id=chen, rule="threshold:systolic_bp")
    assert alerts.count() == 1
    assert alerts.get().trigger_count == 6
    assert sorted(alerts.get().reading_ids) == list(range(6))


def test_stream_numbers_have_no_gap_and_no_repeat_under_concurrency(demo):
    tianhe = list(
        Patient.objects.filter(community__hubs__code="hub-tianhe").values_list("pk", flat=True)
    )[:4]
    rules = ["threshold:heart_rate", "threshold:spo2", "threshold:glucose", "news2"]
    jobs = [
        (lambda p=p, r=r: actions.do_raise_or_update_alert(p, finding(r)))
        for p in tianhe
        for r in rules
    ]
    results = run_together(jobs)
    assert not [r for r in results if isinstance(r, Exception)], results
    seqs = list(
        AlertEvent.objects.filter(stream="hub:hub-tianhe")
        .order_by("seq")
        .values_list("seq", flat=True)
    )
    assert seqs == list(range(1, len(jobs) + 1))
