"""Read DICOM ECG waveform files (12-lead and General ECG) into plain, frozen values.

Pure apart from reading the bytes: no Django, no storage. The FHIR mapping (Observation with
SampledData, DocumentReference for the original file) is built from an ``EcgRecord`` elsewhere.

Decisions a reader should know:

* Samples are physical values computed by pydicom's ``Dataset.waveform_array(index)``, which
  applies ``raw * ChannelSensitivity * ChannelSensitivityCorrectionFactor + ChannelBaseline``
  per channel (PS3.3 C.10.9.1.4.3), in the unit of the Channel Sensitivity Units Sequence
  (UCUM, e.g. ``uV``). The raw integers and the factors are kept too: FHIR SampledData stores
  exactly ``data * factor + origin``, so the mapper can write the raw integers losslessly.
* Channel names come from the coded Channel Source (CID 3001 "ECG Leads"), not from the
  optional free-text Channel Label, because many carts (pydicom's own ``waveform_ecg.dcm``
  among them) send no label and the code is unambiguous. See ``_LEAD_NAMES``.
* A date-time without a UTC offset is read with the file's Timezone Offset From UTC (0008,0201)
  when present, else as Asia/Shanghai: the carts in our pilot hospitals run on local time.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.valuerep import DA, DT, TM
from pydicom.waveforms.numpy_handler import multiplex_array

from devices.dicom.errors import CorruptFile, DicomError, NotAnEcg, NoWaveform

TWELVE_LEAD_ECG_STORAGE = "1.2.840.10008.5.1.4.1.1.9.1.1"
GENERAL_ECG_STORAGE = "1.2.840.10008.5.1.4.1.1.9.1.2"
ECG_SOP_CLASSES: frozenset[str] = frozenset({TWELVE_LEAD_ECG_STORAGE, GENERAL_ECG_STORAGE})

DEFAULT_TIMEZONE: tzinfo = ZoneInfo("Asia/Shanghai")

# Lead numbering. SCP-ECG (EN 1064, section 5.6.3, table 9; DICOM scheme "SCPECG", codes
# "5.6.3-9-<n>") and ISO/IEEE 11073-10101 (DICOM scheme "MDC", codes "2:<n>") number the leads
# identically: DICOM PS3.16 CID 3001 "ECG Leads" lists them side by side (SCPECG 5.6.3-9-1 and
# MDC 2:1 are both Lead I; 5.6.3-9-61 and 2:61 are both Lead III). Names and numbers below were
# checked against the CID 3001 concepts shipped in pydicom (pydicom/sr/_concepts_dict.py).
_LEAD_NAMES: dict[int, str] = {
    1: "Lead I",
    2: "Lead II",
    3: "Lead V1",
    4: "Lead V2",
    5: "Lead V3",
    6: "Lead V4",
    7: "Lead V5",
    8: "Lead V6",
    9: "Lead V7",
    10: "Lead V2R",
    11: "Lead V3R",
    12: "Lead V4R",
    13: "Lead V5R",
    14: "Lead V6R",
    15: "Lead V7R",
    16: "Lead X",
    17: "Lead Y",
    18: "Lead Z",
    61: "Lead III",
    62: "Lead aVR",
    63: "Lead aVL",
    64: "Lead aVF",
    66: "Lead V8",
    67: "Lead V9",
    68: "Lead V8R",
    69: "Lead V9R",
}

# IEEE 11073-10101 context-free codes are partition << 16 | term code; ECG is partition 2.
# MDC_ECG_LEAD_<x> (the lead itself) = 131072 + n, e.g. Lead I 131073, Lead II 131074.
# MDC_ECG_ELEC_POTL_<x> (the sampled electric potential of that lead, which is what a FHIR
# Observation.component carrying SampledData is coded with in the HL7 Point-of-Care Device IG
# example "ECGSampleArrayObservation") = 131328 + n, e.g. Lead I 131329, Lead II 131330,
# Lead III 131389. Sources: HL7 FHIR R4B valueset-devicemetric-type (MDC_ECG_LEAD_I = 131073)
# and the POCD IG example (MDC_ECG_ELEC_POTL = 131328, MDC_ECG_ELEC_POTL_I = 131329).
MDC_ECG_LEAD = 2 << 16
MDC_ECG_ELEC_POTL = (2 << 16) + 256

_SCPECG_LEAD = re.compile(r"^5\.6\.3-9-(\d+)$")
_MDC_LEAD = re.compile(r"^2:(\d+)$")

# The SCP-ECG measurement codes for the stored RR interval, and the MDC heart rate.
_RR_INTERVAL_CODES = {("SCPECG", "5.10.2.1-3")}
_HEART_RATE_CODES = {("MDC", "2:16770"), ("MDC", "147842")}  # MDC_ECG_HEART_RATE

_UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True)
class Code:
    """A DICOM coded entry: (0008,0102) scheme, (0008,0100) value, (0008,0104) meaning."""

    scheme: str
    value: str
    meaning: str


@dataclass(frozen=True, eq=False)
class EcgChannel:
    """One channel (lead) of a multiplex group.

    ``samples`` are physical values in ``units`` (UCUM, ``None`` when the file gives no
    sensitivity and the values are therefore raw counts); ``raw`` are the stored integers, with
    ``samples == raw * sensitivity * sensitivity_correction + baseline``. Both arrays are
    read-only. Equality is identity (``eq=False``) because comparing arrays element-wise has
    no single truth value.
    """

    label: str
    source_code: Code | None
    mdc_code: int | None
    mdc_lead_code: int | None
    units: str | None
    samples: np.ndarray
    raw: np.ndarray
    sampling_frequency: float
    sensitivity: float
    sensitivity_correction: float
    baseline: float
    channel_label: str | None = None
    bits_stored: int | None = None
    filter_low_hz: float | None = None
    filter_high_hz: float | None = None
    notch_hz: float | None = None

    @property
    def duration_s(self) -> float:
        """Length of the channel in seconds (samples / sampling frequency)."""
        return len(self.samples) / self.sampling_frequency


@dataclass(frozen=True)
class WaveformGroup:
    """One multiplex group: channels sampled by one clock (e.g. RHYTHM, MEDIAN BEAT)."""

    label: str | None
    originality: str | None
    sampling_frequency: float
    number_of_samples: int
    channels: tuple[EcgChannel, ...]

    @property
    def duration_s(self) -> float:
        """Length of the group in seconds."""
        return self.number_of_samples / self.sampling_frequency


@dataclass(frozen=True)
class EcgAnnotation:
    """A measurement or statement the cart stored (Waveform Annotation Sequence).

    Only items carrying a numeric value or a text are kept; the many fiducial markers that only
    point at sample positions (P onset, QRS offset, ...) are left out.
    """

    concept: Code | None
    value: float | None
    unit: str | None
    text: str | None
    group_number: int | None


@dataclass(frozen=True)
class EcgRecord:
    """Everything the record needs from one ECG file, in plain Python and numpy values."""

    sop_class_uid: str
    sop_instance_uid: str | None
    patient_id: str | None
    patient_name: str | None
    patient_birth_date: date | None
    acquired_at: datetime | None
    manufacturer: str | None
    model: str | None
    device_serial: str | None
    groups: tuple[WaveformGroup, ...]
    annotations: tuple[EcgAnnotation, ...] = ()
    patient_sex: str | None = None
    institution_name: str | None = None
    study_instance_uid: str | None = None

    @property
    def stored_rr_ms(self) -> float | None:
        """The cart's own RR interval in ms, if it stored a positive one."""
        for ann in self.annotations:
            if ann.concept is None or ann.value is None or ann.value <= 0:
                continue
            key = (ann.concept.scheme, ann.concept.value)
            if key in _RR_INTERVAL_CODES or ann.concept.meaning.lower() == "rr interval":
                return ann.value * 1000.0 if ann.unit == "s" else ann.value
        return None

    @property
    def stored_heart_rate_bpm(self) -> float | None:
        """The cart's heart rate: a stored heart-rate measurement, else 60000 / stored RR."""
        for ann in self.annotations:
            if ann.concept is None or ann.value is None or ann.value <= 0:
                continue
            key = (ann.concept.scheme, ann.concept.value)
            if key in _HEART_RATE_CODES or ann.concept.meaning.lower() == "heart rate":
                return ann.value
        rr = self.stored_rr_ms
        return 60000.0 / rr if rr else None


def read_ecg(source: str | PathLike[str] | bytes | BinaryIO) -> EcgRecord:
    """Read an ECG waveform file from a path, its bytes, or a binary file object.

    Raises ``CorruptFile`` (not DICOM, truncated, unparsable), ``NotAnEcg`` (another SOP
    class) or ``NoWaveform``; bad content never raises anything else. An unreadable *path*
    raises the usual ``OSError``, since that is a problem of the caller's file system, not of
    the file.
    """
    data = _read_bytes(source)
    try:
        ds = _parse(data)
        sop_class_uid = _sop_class_uid(ds)
        if sop_class_uid not in ECG_SOP_CLASSES:
            raise NotAnEcg(f"SOP class {sop_class_uid or '(none)'} is not an ECG waveform class")
        return _record(ds, sop_class_uid)
    except DicomError:
        raise
    except Exception as exc:
        # pydicom converts element values lazily, so a malformed value can surface as almost
        # any exception type while we read it; all of them mean the same thing to the caller.
        raise CorruptFile(f"malformed DICOM dataset: {exc}") from exc


def _read_bytes(source: str | PathLike[str] | bytes | BinaryIO) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | PathLike):
        data = Path(source).read_bytes()
    else:
        data = source.read()
        if not isinstance(data, bytes):
            raise TypeError("file object must be opened in binary mode")
    if not data:
        raise CorruptFile("empty input")
    return data


def _parse(data: bytes) -> Dataset:
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError as exc:
        raise CorruptFile(f"not a DICOM file: {exc}") from exc
    except Exception as exc:
        raise CorruptFile(f"cannot parse DICOM: {exc}") from exc
    _check_complete(ds)
    if ds.get("file_meta") is not None:
        _check_complete(ds.file_meta)
    return ds


def _check_complete(ds: Dataset) -> None:
    """Refuse a dataset whose last element was cut short.

    pydicom reads a truncated file without complaint: the element that straddles the end
    keeps its declared length but gets fewer bytes (a file cut at 500 bytes yields
    AcquisitionDateTime '20' and no waveform). Comparing the two tells truncation apart from a
    file that simply has no waveform.
    """
    for tag in list(ds.keys()):
        elem = ds.get_item(tag, keep_deferred=True)
        if not isinstance(elem, RawDataElement) or elem.value is None:
            continue
        if elem.length != _UNDEFINED_LENGTH and len(elem.value) < elem.length:
            raise CorruptFile(
                f"truncated: element {elem.tag} declares {elem.length} bytes, "
                f"file holds {len(elem.value)}"
            )


def _sop_class_uid(ds: Dataset) -> str:
    uid = _text(ds, "SOPClassUID")
    if uid is None and ds.get("file_meta") is not None:
        uid = _text(ds.file_meta, "MediaStorageSOPClassUID")
    return uid or ""


def _record(ds: Dataset, sop_class_uid: str) -> EcgRecord:
    waveforms = ds.get("WaveformSequence")
    if not waveforms:
        raise NoWaveform("the file has no Waveform Sequence (5400,0100)")
    sop_instance_uid = _text(ds, "SOPInstanceUID")
    if sop_instance_uid is None and ds.get("file_meta") is not None:
        sop_instance_uid = _text(ds.file_meta, "MediaStorageSOPInstanceUID")
    return EcgRecord(
        sop_class_uid=sop_class_uid,
        sop_instance_uid=sop_instance_uid,
        patient_id=_text(ds, "PatientID"),
        patient_name=_text(ds, "PatientName"),
        patient_birth_date=_date(ds.get("PatientBirthDate")),
        acquired_at=_acquired_at(ds),
        manufacturer=_text(ds, "Manufacturer"),
        model=_text(ds, "ManufacturerModelName"),
        device_serial=_text(ds, "DeviceSerialNumber"),
        groups=tuple(_group(ds, index) for index in range(len(waveforms))),
        annotations=tuple(_annotations(ds)),
        patient_sex=_text(ds, "PatientSex"),
        institution_name=_text(ds, "InstitutionName"),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
    )


def _group(ds: Dataset, index: int) -> WaveformGroup:
    item = ds.WaveformSequence[index]
    _check_complete(item)
    where = f"multiplex group {index}"
    n_channels = item.get("NumberOfWaveformChannels")
    n_samples = item.get("NumberOfWaveformSamples")
    fs = _float(item.get("SamplingFrequency"))
    definitions = item.get("ChannelDefinitionSequence") or []
    if not n_channels or not n_samples or "WaveformData" not in item:
        raise NoWaveform(f"{where} has no samples")
    if fs is None or not math.isfinite(fs) or fs <= 0:
        raise CorruptFile(f"{where} has no usable Sampling Frequency")
    if len(definitions) != n_channels:
        raise CorruptFile(f"{where} defines {len(definitions)} channels, declares {n_channels}")
    expected = int(n_samples) * int(n_channels) * int(item.WaveformBitsAllocated) // 8
    if len(item.WaveformData) < expected:
        raise CorruptFile(f"{where} holds {len(item.WaveformData)} bytes, needs {expected}")

    physical = ds.waveform_array(index)
    raw = multiplex_array(ds, index, as_raw=True)
    channels = tuple(
        _channel(definition, number, physical[:, number], raw[:, number], fs)
        for number, definition in enumerate(definitions)
    )
    return WaveformGroup(
        label=_text(item, "MultiplexGroupLabel"),
        originality=_text(item, "WaveformOriginality"),
        sampling_frequency=fs,
        number_of_samples=int(n_samples),
        channels=channels,
    )


def _channel(
    definition: Dataset, number: int, samples: np.ndarray, raw: np.ndarray, fs: float
) -> EcgChannel:
    source = _code(definition.get("ChannelSourceSequence"))
    units = _code(definition.get("ChannelSensitivityUnitsSequence"))
    lead = _lead_number(source)
    channel_label = _text(definition, "ChannelLabel")
    if lead in _LEAD_NAMES:
        label = _LEAD_NAMES[lead]
    else:
        label = channel_label or (source.meaning if source else None) or f"Channel {number + 1}"
    has_sensitivity = _float(definition.get("ChannelSensitivity")) is not None
    samples = np.ascontiguousarray(samples, dtype=np.float64)
    raw = np.ascontiguousarray(raw)
    samples.flags.writeable = False
    raw.flags.writeable = False
    return EcgChannel(
        label=label,
        source_code=source,
        mdc_code=MDC_ECG_ELEC_POTL + lead if lead in _LEAD_NAMES else None,
        mdc_lead_code=MDC_ECG_LEAD + lead if lead in _LEAD_NAMES else None,
        units=(units.value if units else None) if has_sensitivity else None,
        samples=samples,
        raw=raw,
        sampling_frequency=fs,
        sensitivity=_float_or(definition.get("ChannelSensitivity"), 1.0),
        sensitivity_correction=_float_or(definition.get("ChannelSensitivityCorrectionFactor"), 1.0),
        baseline=_float_or(definition.get("ChannelBaseline"), 0.0),
        channel_label=channel_label,
        bits_stored=_int(definition.get("WaveformBitsStored")),
        filter_low_hz=_float(definition.get("FilterLowFrequency")),
        filter_high_hz=_float(definition.get("FilterHighFrequency")),
        notch_hz=_float(definition.get("NotchFilterFrequency")),
    )


def _lead_number(source: Code | None) -> int | None:
    """The SCP-ECG / MDC lead number of a channel source code, if it is a lead code."""
    if source is None:
        return None
    if source.scheme == "SCPECG" and (match := _SCPECG_LEAD.match(source.value)):
        return int(match.group(1))
    if source.scheme == "MDC":
        if match := _MDC_LEAD.match(source.value):
            return int(match.group(1))
        if source.value.isdigit():
            code = int(source.value)
            for base in (MDC_ECG_LEAD, MDC_ECG_ELEC_POTL):
                if base < code < base + 256:
                    return code - base
    return None


def _annotations(ds: Dataset) -> Iterator[EcgAnnotation]:
    for item in ds.get("WaveformAnnotationSequence") or []:
        text = _text(item, "UnformattedTextValue")
        value = item.get("NumericValue")
        if value is not None and not isinstance(value, str | bytes) and hasattr(value, "__len__"):
            value = value[0] if len(value) else None  # multi-valued: keep the first
        number = _float(value)
        if text is None and number is None:
            continue
        units = _code(item.get("MeasurementUnitsCodeSequence"))
        yield EcgAnnotation(
            concept=_code(item.get("ConceptNameCodeSequence")),
            value=number,
            unit=units.value if units else None,
            text=text,
            group_number=_int(item.get("AnnotationGroupNumber")),
        )


def _acquired_at(ds: Dataset) -> datetime | None:
    """AcquisitionDateTime, else ContentDate + ContentTime; aware, or None if absent/invalid."""
    default_zone = _utc_offset(_text(ds, "TimezoneOffsetFromUTC")) or DEFAULT_TIMEZONE
    try:
        if stamp := _text(ds, "AcquisitionDateTime"):
            parsed = DT(stamp)
            moment = datetime.combine(parsed.date(), parsed.timetz())
        elif day := _date(ds.get("ContentDate")):
            clock = _text(ds, "ContentTime")
            moment = datetime.combine(day, _plain_time(TM(clock)) if clock else time())
        else:
            return None
    except (ValueError, TypeError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=default_zone)
    return moment


def _plain_time(value: time) -> time:
    return time(value.hour, value.minute, value.second, value.microsecond)


def _utc_offset(value: str | None) -> tzinfo | None:
    """Parse a DICOM '+HHMM' / '-HHMM' offset."""
    if not value or not re.fullmatch(r"[+-]\d{4}", value):
        return None
    hours, minutes = int(value[1:3]), int(value[3:5])
    if hours > 14 or minutes > 59:
        return None
    sign = -1 if value[0] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    try:
        parsed = DA(str(value))
    except (ValueError, TypeError, OverflowError):
        return None
    return date(parsed.year, parsed.month, parsed.day) if parsed is not None else None


def _code(sequence: Any) -> Code | None:
    if not sequence:
        return None
    item = sequence[0]
    value = _text(item, "CodeValue")
    if value is None:
        return None
    return Code(
        scheme=_text(item, "CodingSchemeDesignator") or "",
        value=value,
        meaning=_text(item, "CodeMeaning") or "",
    )


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _float_or(value: Any, default: float) -> float:
    number = _float(value)
    return default if number is None else number


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
