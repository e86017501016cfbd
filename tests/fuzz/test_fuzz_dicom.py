"""ECG files from outside: an EcgRecord or a DicomError (CorruptFile/NotAnEcg/NoWaveform) only."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from devices.dicom import DicomError, read_ecg
from devices.dicom.ecg import EcgRecord
from tests.fuzz.budget import fuzz_settings

_path = get_testdata_file("waveform_ecg.dcm", download=False)
if _path is None:
    pytest.fail("pydicom's waveform_ecg.dcm is not installed", pytrace=False)
ECG = Path(_path).read_bytes()


def corrupted(data: bytes) -> st.SearchStrategy[bytes]:
    """The real ECG with bytes overwritten, cut short or spliced in (headers are where it breaks)."""
    head = min(len(data), 4096)
    return st.one_of(
        st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=8).map(
            lambda edits: _overwrite(data, edits)
        ),
        st.lists(st.tuples(st.integers(0, head - 1), st.integers(0, 255)), max_size=4).map(
            lambda edits: _overwrite(data, edits)
        ),
        st.integers(0, len(data)).map(lambda n: data[:n]),
        st.tuples(st.integers(0, head), st.binary(min_size=1, max_size=16)).map(
            lambda t: data[: t[0]] + t[1] + data[t[0] :]
        ),
    )


def _overwrite(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for at, value in edits:
        out[at] = value
    return bytes(out)


FILES = st.one_of(
    st.binary(max_size=512),
    st.binary(max_size=256).map(lambda b: b"\0" * 128 + b"DICM" + b),
    corrupted(ECG),
)


@fuzz_settings(150)
@given(data=FILES)
def test_any_file_reads_as_an_ecg_or_raises_dicom_error(data: bytes) -> None:
    try:
        record = read_ecg(data)
    except DicomError:
        return
    assert isinstance(record, EcgRecord)
