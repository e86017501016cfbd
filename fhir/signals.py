"""Announcements from the record to apps on its right (rules, alerts), sent after commit."""

from django.dispatch import Signal

# Sent once per committed write that stored typed vitals.
# kwargs: patient_id: int, vital_ids: list[int]
vitals_stored = Signal()
