"""Celery tasks: each takes ids, calls one service, and is safe to run twice (acks_late)."""

from __future__ import annotations

import logging
from datetime import datetime

from celery import shared_task

from community import alerting

logger = logging.getLogger(__name__)


@shared_task(name="community.tasks.evaluate_readings", acks_late=True)
def evaluate_readings(patient_id: int, vital_ids: list[int], span: list[str] | None = None) -> int:
    """Rules over a patient's newly stored readings → alerts. Returns the number of findings.

    ``span``: the ISO times of the earliest and latest of those readings, when the writer knew
    them (it lets the look-ups skip other months' partitions); tasks without it still work.
    """
    return len(alerting.process_new_readings(patient_id, vital_ids, span=_span(span)).findings)


def _span(span) -> tuple[datetime, datetime] | None:
    """The (earliest, latest) of a task's ``span``; None (look everywhere) when it is not two
    ISO times with a zone, earliest first: a bad hint must not cost an evaluation."""
    try:
        earliest, latest = (datetime.fromisoformat(t) for t in span or ())
    except (TypeError, ValueError):
        if span:
            logger.warning("evaluate_readings: span %r ignored", span)
        return None
    if earliest.tzinfo is None or latest.tzinfo is None or earliest > latest:
        logger.warning("evaluate_readings: span %r ignored", span)
        return None
    return earliest, latest


@shared_task(name="community.tasks.evaluate_missed", acks_late=True)
def evaluate_missed() -> int:
    """Readings whose evaluation never ran (beat every minute): no reading goes unexamined."""
    return alerting.evaluate_missed()


@shared_task(name="community.tasks.escalate_overdue", acks_late=True)
def escalate_overdue() -> int:
    """Climb unacknowledged alerts past their deadline (beat every 30 s, and by countdown)."""
    return len(alerting.escalate_due())


@shared_task(name="community.tasks.check_silence", acks_late=True)
def check_silence() -> int:
    """No-data, device offline and low battery (beat every 5 min)."""
    return alerting.process_silence()
