"""Reading DICOM ECG waveform files: pydicom's own 12-lead sample, variants of it, bad input.

The sample is ``waveform_ecg.dcm`` from the pydicom wheel (a Mortara el250 12-lead recording,
anonymised); what it holds is written down in ``shared/reference/waveform_ecg_expected.json``,
which these tests check field by field.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from devices.dicom import (
    ECG_SOP_CLASSES,
    GENERAL_ECG_STORAGE,
    TWELVE_LEAD_ECG_STORAGE,
    Code,
    CorruptFile,
    DicomError,
    EcgRecord,
    NotAnEcg,
    NoWaveform,
    read_ecg,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXPECTED_CANDIDATES = (
    PROJECT_ROOT / "tests" / "data" / "dicom" / "waveform_ecg_expected.json",
    PROJECT_ROOT.parent / "shared" / "reference" / "waveform_ecg_expected.json",
)
HEMODYNAMIC_WAVEFORM_STORAGE = "1.2.840.10008.5.1.4.1.1.9.2.1"


def _testdata(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    if path is None:  # the files ship in the pydicom wheel; this guards a stripped install
        pytest.fail(f"pydicom test file {name} is not installed")
    return Path(path)


ECG_PATH = _testdata("waveform_ecg.dcm")


@pytest.fixture(scope="module")
def expected() -> dict:
    for candidate in EXPECTED_CANDIDATES:
        if candidate.exists():
            return json.loads(candidate.read_text())
    pytest.fail("waveform_ecg_expected.json not found in tests/data/dicom or ../shared/reference")


@pytest.fixture(scope="module")
def record() -> EcgRecord:
    return read_ecg(ECG_PATH)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return pydicom.dcmread(ECG_PATH)


def _to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def _edited(**changes: object) -> Dataset:
    """A fresh copy of the sample with top-level keywords set (or deleted when None)."""
    ds = pydicom.dcmread(ECG_PATH)
    for keyword, value in changes.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


# --- the sample file, against the reference json ------------------------------------------


def test_sample_file_is_the_one_the_reference_describes(expected: dict, dataset: Dataset) -> None:
    data = ECG_PATH.read_bytes()
    assert len(data) == expected["file_size_bytes"]
    assert hashlib.sha256(data).hexdigest() == expected["sha256"]
    assert dataset.file_meta.TransferSyntaxUID == expected["TransferSyntaxUID"]
    assert dataset.file_meta.TransferSyntaxUID.name == expected["TransferSyntaxName"]
    assert dataset.SOPClassUID.name == expected["SOPClassName"]
    assert dataset.Modality == expected["Modality"]
    assert dataset.PatientAge == expected["PatientAge"]
    assert dataset.StudyDate == expected["StudyDate"]
    assert dataset.AcquisitionDateTime == expected["AcquisitionDateTime"]


def test_sample_header_fields_decode(expected: dict, record: EcgRecord) -> None:
    assert record.sop_class_uid == expected["SOPClassUID"] == TWELVE_LEAD_ECG_STORAGE
    assert record.sop_instance_uid == expected["SOPInstanceUID"]
    assert record.manufacturer == expected["Manufacturer"]
    assert record.model == expected["ManufacturerModelName"]
    assert record.device_serial is None  # (0018,1000) is present but empty in the file
    assert record.patient_id == expected["PatientID"]
    assert record.patient_name == expected["PatientName"]
    assert record.patient_sex == expected["PatientSex"]
    assert record.patient_birth_date == date(1971, 1, 23)
    assert record.patient_birth_date.strftime("%Y%m%d") == expected["PatientBirthDate"]
    assert record.institution_name == expected["InstitutionName"]
    # AcquisitionDateTime has no offset and the file no Timezone Offset From UTC: read as
    # Asia/Shanghai, the documented default.
    assert record.acquired_at == datetime(2013, 1, 25, 10, 59, 19, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert record.acquired_at.strftime("%Y%m%d%H%M%S") == expected["AcquisitionDateTime"]
    assert len(record.groups) == expected["NumberOfMultiplexGroups"]


def test_sample_groups_decode(expected: dict, record: EcgRecord, dataset: Dataset) -> None:
    for want, group in zip(expected["multiplex_groups"], record.groups, strict=True):
        item = dataset.WaveformSequence[want["index"]]
        assert group.label == want["MultiplexGroupLabel"]
        assert group.originality == want["WaveformOriginality"]
        assert len(group.channels) == want["NumberOfWaveformChannels"]
        assert group.number_of_samples == want["NumberOfWaveformSamples"]
        assert str(item.SamplingFrequency) == want["SamplingFrequency_raw_DS"]
        assert group.sampling_frequency == want["SamplingFrequency_hz"]
        assert group.duration_s == pytest.approx(want["duration_s"])
        assert item.WaveformBitsAllocated == want["WaveformBitsAllocated"]
        assert item.WaveformSampleInterpretation == want["WaveformSampleInterpretation"]
        assert len(item.WaveformData) == want["WaveformData_bytes"]

        raw = np.column_stack([channel.raw for channel in group.channels])
        scaled = np.column_stack([channel.samples for channel in group.channels])
        assert list(raw.shape) == want["raw_array_shape"]
        assert raw.dtype == np.dtype(want["raw_dtype"])
        assert raw.min() == want["raw_min"]
        assert raw.max() == want["raw_max"]
        assert raw[:5, 0].tolist() == want["raw_first5_ch0"]
        assert raw[:5, 1].tolist() == want["raw_first5_ch1"]
        assert scaled.dtype == np.dtype(want["scaled_dtype"])
        assert scaled[:5, 0].tolist() == pytest.approx(want["scaled_first5_ch0_uV"])
        assert scaled[:5, 1].tolist() == pytest.approx(want["scaled_first5_ch1_uV"])
        # Our physical values are exactly pydicom's waveform_array().
        np.testing.assert_array_equal(scaled, dataset.waveform_array(want["index"]))


def test_sample_channels_decode(expected: dict, record: EcgRecord, dataset: Dataset) -> None:
    for want_group, group in zip(expected["multiplex_groups"], record.groups, strict=True):
        item = dataset.WaveformSequence[want_group["index"]]
        for want, channel in zip(want_group["channels"], group.channels, strict=True):
            definition = item.ChannelDefinitionSequence[want["index"]]
            units_item = definition.ChannelSensitivityUnitsSequence[0]
            assert channel.source_code == Code(
                scheme=want["scheme"], value=want["source_code"], meaning=want["code_meaning"]
            )
            assert (channel.channel_label is not None) == want["ChannelLabel_present"]
            assert channel.sensitivity == want["sensitivity"]
            assert channel.units == want["sensitivity_units"]
            assert units_item.CodingSchemeDesignator == want["units_scheme"]
            assert units_item.CodeMeaning == want["units_meaning"]
            assert channel.sensitivity_correction == want["correction_factor"]
            assert channel.baseline == want["baseline"]
            assert channel.bits_stored == want["bits_stored"]
            assert channel.filter_low_hz == want["filter_low_hz"]
            assert channel.filter_high_hz == want["filter_high_hz"]
            assert channel.notch_hz == want["notch_hz"]
            assert channel.sampling_frequency == want_group["SamplingFrequency_hz"]
            assert channel.duration_s == pytest.approx(want_group["duration_s"])
            np.testing.assert_allclose(
                channel.samples,
                channel.raw * channel.sensitivity * channel.sensitivity_correction
                + channel.baseline,
            )


# Lead names and IEEE 11073 codes derived from the SCP-ECG source codes (the file has no
# Channel Label). MDC_ECG_ELEC_POTL_x = 131328 + n and MDC_ECG_LEAD_x = 131072 + n, n being the
# SCP-ECG / MDC lead number of DICOM CID 3001.
LEADS_IN_FILE_ORDER = [
    ("Lead I", 131329, 131073),
    ("Lead II", 131330, 131074),
    ("Lead III", 131389, 131133),
    ("Lead aVR", 131390, 131134),
    ("Lead aVL", 131391, 131135),
    ("Lead aVF", 131392, 131136),
    ("Lead V1", 131331, 131075),
    ("Lead V2", 131332, 131076),
    ("Lead V3", 131333, 131077),
    ("Lead V4", 131334, 131078),
    ("Lead V5", 131335, 131079),
    ("Lead V6", 131336, 131080),
]


def test_channels_are_named_and_coded_from_their_source_codes(record: EcgRecord) -> None:
    for group in record.groups:
        got = [(c.label, c.mdc_code, c.mdc_lead_code) for c in group.channels]
        assert got == LEADS_IN_FILE_ORDER


def test_stored_measurements_and_statements_are_kept(expected: dict, record: EcgRecord) -> None:
    got = []
    for annotation in record.annotations:
        if annotation.text is not None:
            got.append({"text": annotation.text})
        else:
            assert annotation.concept is not None
            got.append(
                {
                    "code": annotation.concept.value,
                    "scheme": annotation.concept.scheme,
                    "meaning": annotation.concept.meaning,
                    "value": annotation.value,
                    "unit": annotation.unit,
                }
            )
    assert got == expected["global_measurements_and_statements"]
    assert record.stored_rr_ms == 982.0
    assert round(record.stored_heart_rate_bpm, 1) == expected["derived_heart_rate_bpm_from_RR"]


def test_accepted_sop_classes_match_the_reference(expected: dict) -> None:
    uids = expected["related_uids"]
    assert uids["12-lead ECG Waveform Storage"] == TWELVE_LEAD_ECG_STORAGE
    assert uids["General ECG Waveform Storage"] == GENERAL_ECG_STORAGE
    assert frozenset({TWELVE_LEAD_ECG_STORAGE, GENERAL_ECG_STORAGE}) == ECG_SOP_CLASSES


def test_samples_are_read_only(record: EcgRecord) -> None:
    channel = record.groups[0].channels[0]
    with pytest.raises(ValueError):
        channel.samples[0] = 0.0
    with pytest.raises(ValueError):
        channel.raw[0] = 0


# --- the ways a source can be handed in ---------------------------------------------------


def test_path_str_bytes_and_file_object_give_the_same_record(record: EcgRecord) -> None:
    data = ECG_PATH.read_bytes()
    with ECG_PATH.open("rb") as handle:
        from_handle = read_ecg(handle)
    for other in (read_ecg(str(ECG_PATH)), read_ecg(data), read_ecg(io.BytesIO(data)), from_handle):
        assert other.sop_instance_uid == record.sop_instance_uid
        np.testing.assert_array_equal(
            other.groups[0].channels[1].samples, record.groups[0].channels[1].samples
        )


def test_missing_path_raises_the_usual_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_ecg(tmp_path / "absent.dcm")


# --- variants of the sample ---------------------------------------------------------------


def test_general_ecg_file_is_accepted() -> None:
    ds = _edited(SOPClassUID=GENERAL_ECG_STORAGE)
    ds.file_meta.MediaStorageSOPClassUID = GENERAL_ECG_STORAGE
    record = read_ecg(_to_bytes(ds))
    assert record.sop_class_uid == GENERAL_ECG_STORAGE
    assert [c.label for c in record.groups[0].channels][:2] == ["Lead I", "Lead II"]


def test_sop_class_only_in_file_meta_is_accepted() -> None:
    ds = _edited(SOPClassUID=None, SOPInstanceUID=None)
    record = read_ecg(_to_bytes(ds))
    assert record.sop_class_uid == TWELVE_LEAD_ECG_STORAGE
    assert record.sop_instance_uid == ds.file_meta.MediaStorageSOPInstanceUID


def test_other_waveform_sop_class_is_not_an_ecg() -> None:
    ds = _edited(SOPClassUID=HEMODYNAMIC_WAVEFORM_STORAGE)
    ds.file_meta.MediaStorageSOPClassUID = HEMODYNAMIC_WAVEFORM_STORAGE
    with pytest.raises(NotAnEcg):
        read_ecg(_to_bytes(ds))


def test_timezone_offset_from_utc_applies_to_a_naive_acquisition_time() -> None:
    ds = _edited(TimezoneOffsetFromUTC="+0100")
    record = read_ecg(_to_bytes(ds))
    assert record.acquired_at == datetime(
        2013, 1, 25, 10, 59, 19, tzinfo=timezone(timedelta(hours=1))
    )


def test_offset_inside_the_acquisition_datetime_wins() -> None:
    record = read_ecg(_to_bytes(_edited(AcquisitionDateTime="20130125105919-0500")))
    assert record.acquired_at == datetime(
        2013, 1, 25, 10, 59, 19, tzinfo=timezone(timedelta(hours=-5))
    )


def test_content_date_and_time_stand_in_for_a_missing_acquisition_datetime() -> None:
    record = read_ecg(
        _to_bytes(_edited(AcquisitionDateTime=None, ContentDate="20240301", ContentTime="081500"))
    )
    assert record.acquired_at == datetime(2024, 3, 1, 8, 15, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_unparsable_acquisition_time_leaves_the_waveform_readable() -> None:
    record = read_ecg(
        _to_bytes(_edited(AcquisitionDateTime="not a date", ContentDate=None, ContentTime=None))
    )
    assert record.acquired_at is None
    assert len(record.groups) == 2


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm"])
def test_other_dicom_objects_are_not_an_ecg(name: str) -> None:
    with pytest.raises(NotAnEcg):
        read_ecg(_testdata(name))


def test_file_truncated_to_500_bytes_is_corrupt() -> None:
    # pydicom itself reads these 500 bytes without complaint (it keeps the half-read
    # Acquisition DateTime '20' and finds no waveform); the reader must not call this
    # "no waveform".
    with pytest.raises(CorruptFile, match="truncated"):
        read_ecg(ECG_PATH.read_bytes()[:500])


@pytest.mark.parametrize("length", [100, 2_000, 100_000, 290_000])
def test_file_truncated_anywhere_is_corrupt(length: int) -> None:
    with pytest.raises(CorruptFile):
        read_ecg(ECG_PATH.read_bytes()[:length])


def test_random_bytes_are_corrupt() -> None:
    noise = np.random.default_rng(20130125).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(CorruptFile):
        read_ecg(noise)


@pytest.mark.parametrize("empty", [b"", io.BytesIO(b"")])
def test_empty_input_is_corrupt(empty: bytes | io.BytesIO) -> None:
    with pytest.raises(CorruptFile, match="empty"):
        read_ecg(empty)


def test_ecg_without_waveform_sequence_has_no_waveform() -> None:
    with pytest.raises(NoWaveform):
        read_ecg(_to_bytes(_edited(WaveformSequence=None)))


def test_ecg_with_empty_waveform_sequence_has_no_waveform() -> None:
    ds = _edited()
    ds.WaveformSequence = []
    with pytest.raises(NoWaveform):
        read_ecg(_to_bytes(ds))


def test_waveform_data_shorter_than_declared_is_corrupt() -> None:
    ds = _edited()
    ds.WaveformSequence[0].WaveformData = ds.WaveformSequence[0].WaveformData[:1000]
    with pytest.raises(CorruptFile):
        read_ecg(_to_bytes(ds))


def test_channel_count_disagreeing_with_definitions_is_corrupt() -> None:
    ds = _edited()
    ds.WaveformSequence[0].NumberOfWaveformChannels = 13
    with pytest.raises(CorruptFile):
        read_ecg(_to_bytes(ds))


def test_zero_sampling_frequency_is_corrupt() -> None:
    ds = _edited()
    ds.WaveformSequence[0].SamplingFrequency = "0"
    with pytest.raises(CorruptFile):
        read_ecg(_to_bytes(ds))


def test_errors_are_value_errors_of_one_family() -> None:
    for error in (CorruptFile, NotAnEcg, NoWaveform):
        assert issubclass(error, DicomError)
    assert issubclass(DicomError, ValueError)


ECG_BYTES = ECG_PATH.read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(min_value=0, max_value=len(ECG_BYTES)),
    flips=st.lists(
        st.tuples(st.integers(min_value=0, max_value=4_000), st.integers(0, 255)), max_size=8
    ),
)
def test_damaged_files_give_a_record_or_a_dicom_error_never_anything_else(
    cut: int, flips: list[tuple[int, int]]
) -> None:
    # Damage goes into the first 4 kB, where the header and channel definitions live.
    data = bytearray(ECG_BYTES[:cut])
    for position, value in flips:
        if position < len(data):
            data[position] = value
    with contextlib.suppress(DicomError):
        read_ecg(bytes(data))


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=2_000))
def test_arbitrary_bytes_give_a_dicom_error(data: bytes) -> None:
    with pytest.raises(DicomError):
        read_ecg(data)
