"""ECG waveform files in DICOM: reading them, and measuring the heart rate they show.

Pure code, no Django: the FHIR mapping and the ``import_dicom`` command build on these values.
"""

from devices.dicom.ecg import (
    ECG_SOP_CLASSES,
    GENERAL_ECG_STORAGE,
    TWELVE_LEAD_ECG_STORAGE,
    Code,
    EcgAnnotation,
    EcgChannel,
    EcgRecord,
    WaveformGroup,
    read_ecg,
)
from devices.dicom.errors import CorruptFile, DicomError, NotAnEcg, NoWaveform
from devices.dicom.heart_rate import (
    HeartRate,
    HeartRateError,
    choose_lead,
    detect_r_peaks,
    heart_rate_bpm,
)

__all__ = [
    "ECG_SOP_CLASSES",
    "GENERAL_ECG_STORAGE",
    "TWELVE_LEAD_ECG_STORAGE",
    "Code",
    "CorruptFile",
    "DicomError",
    "EcgAnnotation",
    "EcgChannel",
    "EcgRecord",
    "HeartRate",
    "HeartRateError",
    "NoWaveform",
    "NotAnEcg",
    "WaveformGroup",
    "choose_lead",
    "detect_r_peaks",
    "heart_rate_bpm",
    "read_ecg",
]
