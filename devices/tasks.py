"""Celery tasks of the devices app (queue "interfaces"): take ids, call one service."""

from __future__ import annotations

from celery import shared_task

from devices.hl7 import outbound

MAX_DELIVERY_RETRIES = 8  # with backoff 5 s doubling to 10 min: about 40 minutes of trying


@shared_task(
    bind=True,
    autoretry_for=(outbound.DeliveryError,),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=MAX_DELIVERY_RETRIES,
    acks_late=True,
    reject_on_worker_lost=True,
)
def send_hl7_message(self, message_id: int) -> str:
    """Deliver one outbound HL7 message to its hospital; the row records each attempt."""
    try:
        return outbound.deliver(message_id).status
    except outbound.DeliveryError:
        if self.request.retries >= self.max_retries:
            outbound.mark_failed(message_id)
            return "failed"
        raise
