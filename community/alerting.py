"""From clinic's findings to alerts: the services the Celery tasks call, one per task."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from clinic.evaluation import Evaluation, evaluate_new_readings, evaluate_silence, within
from clinic.models import Patient
from community.actions import OPEN, do_clear_alert, do_escalate_tier, do_raise_or_update_alert
from community.models import Alert
from fhir.bulk import allow_generic_plans
from fhir.models import VitalSign

logger = logging.getLogger(__name__)

SILENCE_RULES = ("no_data:", "device_offline", "low_battery")
ESCALATION_BATCH = 500


def lock_patient_for_evaluation(patient_id: int) -> bool:
    """Take the patient's row lock that serialises evaluations; False if there is no patient.

    FOR NO KEY UPDATE, not FOR UPDATE: uploads check their foreign keys to the patient with FOR
    KEY SHARE at commit, after taking the audit chain's lock, and an evaluation holding FOR
    UPDATE while it waits for that same audit lock deadlocked with them under load.
    """
    return Patient.objects.select_for_update(no_key=True).filter(pk=patient_id).exists()


def process_new_readings(
    patient_id: int, vital_ids: Collection[int], *, span: tuple[datetime, datetime] | None = None
) -> Evaluation:
    """Evaluate one patient's new readings and apply the result, all in one transaction.

    The patient row is locked first, so two workers with readings of the same patient take
    turns: the second sees the alert the first opened, and persistence and hysteresis hold.
    ``span`` (earliest, latest effective time of the readings), when known, confines the
    look-ups by id to the month partitions that hold them.
    """
    with transaction.atomic():
        allow_generic_plans()
        if not lock_patient_for_evaluation(patient_id):
            return Evaluation()
        open_rules = set(
            Alert.objects.filter(patient_id=patient_id, status__in=OPEN).values_list(
                "rule", flat=True
            )
        )
        evaluation = evaluate_new_readings(patient_id, vital_ids, open_rules=open_rules, span=span)
        for finding in evaluation.findings:
            do_raise_or_update_alert(patient_id, finding, news2=evaluation.news2)
        for rule in evaluation.clears:
            do_clear_alert(patient_id, rule)
        VitalSign.objects.filter(pk__in=list(vital_ids), **within(span)).update(
            evaluated_at=timezone.now()
        )
    return evaluation


def evaluate_missed(*, older_than: timedelta | None = None, limit: int = 5000) -> int:
    """Evaluate readings whose evaluation task never ran (a broker lost it, a worker died before
    acknowledging, the queue was flushed). The database is the record; the queue is a hint.
    Returns the number of readings evaluated."""
    if older_than is None:
        older_than = timedelta(seconds=settings.MISSED_EVALUATION_AFTER_S)
    cutoff = timezone.now() - older_than
    rows = (
        VitalSign.objects.filter(evaluated_at__isnull=True, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("patient_id", "pk")[:limit]
    )
    by_patient: dict[int, list[int]] = defaultdict(list)
    for patient_id, pk in rows:
        by_patient[patient_id].append(pk)
    for patient_id, ids in by_patient.items():
        process_new_readings(patient_id, ids)
    return sum(len(ids) for ids in by_patient.values())


def process_silence(now: datetime | None = None) -> int:
    """Raise and clear no-data, device-offline and low-battery alerts; returns the changes made."""
    now = now or timezone.now()
    open_rules: dict[int, set[str]] = defaultdict(set)
    for patient_id, rule in Alert.objects.filter(status__in=OPEN).values_list("patient_id", "rule"):
        if rule.startswith(SILENCE_RULES):
            open_rules[patient_id].add(rule)
    changes = 0
    for result in evaluate_silence(now, open_rules=open_rules):
        for finding in result.findings:
            changes += do_raise_or_update_alert(result.patient_id, finding) is not None
        for rule in result.clears:
            changes += do_clear_alert(result.patient_id, rule) is not None
    return changes


def escalate_due(now: datetime | None = None) -> list[int]:
    """Climb every unacknowledged alert past its deadline by one tier; returns their ids."""
    now = now or timezone.now()
    due = list(
        Alert.objects.filter(status="open", escalate_at__lte=now)
        .order_by("escalate_at")
        .values_list("pk", flat=True)[:ESCALATION_BATCH]
    )
    climbed = []
    for alert_id in due:
        try:
            if do_escalate_tier(alert_id, now=now) is not None:
                climbed.append(alert_id)
        except Exception:
            # One broken alert must not hold the others back; the next sweep retries it.
            logger.exception("escalating alert %s failed", alert_id)
    return climbed
