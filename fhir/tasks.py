"""Periodic upkeep of the shared record's storage."""

from __future__ import annotations

from celery import shared_task

from fhir import partitions


@shared_task(acks_late=True)
def ensure_vitals_partitions() -> list[str]:
    """Keep next months' vitals partitions created ahead of the readings that will need them,
    and the partitioned table's own statistics fresh (autovacuum never analyzes it)."""
    created = partitions.ensure_partitions()
    partitions.analyze_parent()
    return created
