"""The one error family for DICOM input.

Every way a file can be unusable maps onto one of these, so the caller (the ``import_dicom``
command, an upload view) needs a single ``except DicomError`` to turn bad input into a clear
message instead of a traceback. They subclass ``ValueError`` because the problem is always the
value handed in, never the program.
"""

from __future__ import annotations


class DicomError(ValueError):
    """Base class: the input cannot be read as an ECG waveform."""


class CorruptFile(DicomError):
    """Not DICOM at all, truncated, or an element that does not parse."""


class NotAnEcg(DicomError):
    """Valid DICOM, but of a SOP class other than the ECG waveform classes we accept."""


class NoWaveform(DicomError):
    """An ECG SOP class whose Waveform Sequence is missing, empty or unusable."""
