"""Announcements from the record to apps on its right (rules, alerts), sent after commit."""

from django.dispatch import Signal

# Sent once per committed write that stored typed vitals.
# kwargs: patient_id: int, vital_ids: list[int],
#         span: (earliest, latest) effective_at of those rows, so readers of the vitals table
#         look in the month partitions that hold them, not in every partition
vitals_stored = Signal()
