"""Signal receivers connecting the record (fhir) to the alerts, wired in CommunityConfig.ready."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def queue_evaluation(sender, *, patient_id: int, vital_ids: list[int], span=None, **kwargs) -> None:
    """Queue rule evaluation for readings that are already committed.

    Runs inside the writer's on_commit: an error here must not turn a stored upload into a
    failed response (with eager Celery the task itself runs here), so it is logged instead.
    """
    from community.tasks import evaluate_readings

    try:
        evaluate_readings.delay(
            patient_id, list(vital_ids), span=[t.isoformat() for t in span] if span else None
        )
    except Exception:
        logger.exception(
            "alert evaluation for patient %s (vitals %s) failed", patient_id, vital_ids
        )
