"""Heart rate from ECG leads: pydicom's sample file, synthetic ECGs, and refusals."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from devices.dicom import (
    EcgChannel,
    EcgRecord,
    HeartRateError,
    choose_lead,
    detect_r_peaks,
    heart_rate_bpm,
    read_ecg,
)

TOLERANCE_BPM = 3.0


@pytest.fixture(scope="module")
def record() -> EcgRecord:
    path = get_testdata_file("waveform_ecg.dcm", download=False)
    assert path is not None, "pydicom's waveform_ecg.dcm ships in its wheel"
    return read_ecg(Path(path))


def synthetic_ecg(
    bpm: float,
    *,
    fs: float = 500.0,
    seconds: float = 10.0,
    seed: int = 0,
    noise_mv: float = 0.03,
    wander_mv: float = 0.3,
    polarity: float = 1.0,
) -> np.ndarray:
    """An ECG-like lead in mV: Gaussian QRS spikes at ``bpm``, plus T waves, noise, wander.

    QRS: 1 mV, sigma 10 ms. T wave: 0.3 mV, sigma 40 ms, 0.25 * sqrt(RR) s after the R (a QT
    that shortens with rate, as Bazett's formula has it). Baseline wander: a 0.3 Hz sine.
    White noise: Gaussian. The first beat falls at a random phase.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * fs)) / fs
    rr = 60.0 / bpm
    x = np.zeros_like(t)
    for beat in np.arange(rng.uniform(0.1, rr), seconds, rr):
        x += polarity * np.exp(-0.5 * ((t - beat) / 0.010) ** 2)
        x += 0.3 * np.exp(-0.5 * ((t - beat - 0.25 * np.sqrt(rr)) / 0.040) ** 2)
    x += wander_mv * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 2 * np.pi))
    x += rng.normal(0.0, noise_mv, len(t))
    return x


def channel(samples: np.ndarray, fs: float, label: str = "Lead II") -> EcgChannel:
    return EcgChannel(
        label=label,
        source_code=None,
        mdc_code=None,
        mdc_lead_code=None,
        units="mV",
        samples=samples,
        raw=samples,
        sampling_frequency=fs,
        sensitivity=1.0,
        sensitivity_correction=1.0,
        baseline=0.0,
    )


# --- pydicom's sample file ---------------------------------------------------------------


# Derived by hand from the rhythm group's lead II (channel 1, 1000 Hz, in uV): its median is
# 37.5 uV and its maximum 1137.5 uV; taking every local maximum above the half-way level
# (587.5 uV) and merging maxima closer than 200 ms leaves exactly ten R peaks, at samples
# 527, 1527, 2505, 3491, 4485, 5468, 6443, 7444, 8418 and 9370 (1008.75 to 1137.5 uV each).
# Their nine RR intervals are 1000, 978, 986, 994, 983, 975, 1001, 974 and 952 ms: mean
# 982.6 ms, i.e. 61.07 bpm, agreeing with the RR interval of 982 ms the cart stored
# (61.1 bpm). The cart's own fiducial point for the first beat is also sample 527.
HAND_R_PEAKS_LEAD_II = [527, 1527, 2505, 3491, 4485, 5468, 6443, 7444, 8418, 9370]
HAND_BPM_LEAD_II = 60_000 / np.mean(np.diff(HAND_R_PEAKS_LEAD_II))


def test_sample_heart_rate_agrees_with_the_stored_rr_and_the_hand_count(record: EcgRecord) -> None:
    rate = heart_rate_bpm(record)
    assert rate.lead == "Lead II"
    assert rate.n_beats == 10
    assert record.stored_heart_rate_bpm == pytest.approx(61.1, abs=0.05)
    assert rate.bpm == pytest.approx(record.stored_heart_rate_bpm, abs=TOLERANCE_BPM)
    assert rate.bpm == pytest.approx(HAND_BPM_LEAD_II, abs=TOLERANCE_BPM)
    assert rate.rr_ms_mean == pytest.approx(60_000 / rate.bpm)


def test_sample_r_peaks_are_where_the_hand_count_put_them(record: EcgRecord) -> None:
    lead_ii = record.groups[0].channels[1]
    peaks = detect_r_peaks(lead_ii.samples, lead_ii.sampling_frequency)
    # Within 2 ms: lead II has a flat-topped R at one beat (3490 and 3491 hold the same value).
    np.testing.assert_allclose(peaks, HAND_R_PEAKS_LEAD_II, atol=2)


def test_every_lead_of_the_sample_gives_the_same_rate(record: EcgRecord) -> None:
    for lead in record.groups[0].channels:
        rate = heart_rate_bpm(lead)
        assert rate.bpm == pytest.approx(61.1, abs=TOLERANCE_BPM), lead.label
        assert rate.n_beats == 10, lead.label


def test_record_rate_skips_the_median_beat_group(record: EcgRecord) -> None:
    # Putting the 1.2 s median beat first must not matter: it is DERIVED and too short.
    reordered = replace(record, groups=tuple(reversed(record.groups)))
    assert choose_lead(reordered) is record.groups[0].channels[1]


def test_lead_i_is_used_when_there_is_no_lead_ii(record: EcgRecord) -> None:
    rhythm = record.groups[0]
    without_ii = replace(rhythm, channels=tuple(c for c in rhythm.channels if c.label != "Lead II"))
    rate = heart_rate_bpm(replace(record, groups=(without_ii,)))
    assert rate.lead == "Lead I"


def test_first_channel_is_used_when_there_is_no_limb_lead(record: EcgRecord) -> None:
    rhythm = record.groups[0]
    chest = tuple(c for c in rhythm.channels if c.label.startswith("Lead V"))
    rate = heart_rate_bpm(replace(record, groups=(replace(rhythm, channels=chest),)))
    assert rate.lead == "Lead V1"


# --- synthetic ECGs ------------------------------------------------------------------------


@pytest.mark.parametrize("bpm", [60, 75, 120, 180])
@pytest.mark.parametrize("fs", [250.0, 500.0, 1000.0])
def test_synthetic_rate_is_recovered(bpm: int, fs: float) -> None:
    rate = heart_rate_bpm(channel(synthetic_ecg(bpm, fs=fs, seed=bpm), fs))
    assert rate.bpm == pytest.approx(bpm, abs=TOLERANCE_BPM)


@pytest.mark.parametrize("bpm", [60, 75, 120, 180])
def test_synthetic_rate_is_recovered_from_an_inverted_lead(bpm: int) -> None:
    # aVR-like: the QRS points down, the T wave up.
    samples = synthetic_ecg(bpm, seed=bpm, polarity=-1.0)
    assert heart_rate_bpm(channel(samples, 500.0)).bpm == pytest.approx(bpm, abs=TOLERANCE_BPM)


@pytest.mark.parametrize("bpm", [60, 120])
def test_synthetic_rate_survives_heavy_noise_and_wander(bpm: int) -> None:
    samples = synthetic_ecg(bpm, seed=7, noise_mv=0.15, wander_mv=1.0)
    assert heart_rate_bpm(channel(samples, 500.0)).bpm == pytest.approx(bpm, abs=TOLERANCE_BPM)


def test_synthetic_beats_are_each_found_once() -> None:
    samples = synthetic_ecg(75, seed=3)
    peaks = detect_r_peaks(samples, 500.0)
    assert len(peaks) in (12, 13)  # 10 s at 0.8 s per beat, first beat at a random phase
    assert np.all(np.diff(peaks) == pytest.approx(400, abs=3))


@settings(max_examples=60, deadline=None)
@given(
    bpm=st.floats(min_value=40.0, max_value=180.0),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    fs=st.sampled_from([250.0, 360.0, 500.0, 1000.0]),
)
def test_any_rate_between_40_and_180_is_recovered(bpm: float, seed: int, fs: float) -> None:
    rate = heart_rate_bpm(channel(synthetic_ecg(bpm, fs=fs, seed=seed), fs))
    assert rate.bpm == pytest.approx(bpm, abs=TOLERANCE_BPM)


# --- refusals ------------------------------------------------------------------------------


def test_signal_shorter_than_two_seconds_is_refused() -> None:
    with pytest.raises(HeartRateError, match="at least 2 s"):
        heart_rate_bpm(channel(synthetic_ecg(120, seconds=1.9), 500.0))


def test_median_beat_channel_is_refused_as_too_short(record: EcgRecord) -> None:
    with pytest.raises(HeartRateError, match="at least 2 s"):
        heart_rate_bpm(record.groups[1].channels[1])


def test_record_without_a_long_enough_group_is_refused(record: EcgRecord) -> None:
    with pytest.raises(HeartRateError, match="at least 2 s"):
        heart_rate_bpm(replace(record, groups=(record.groups[1],)))


def test_flat_signal_has_no_beats_and_is_refused() -> None:
    assert len(detect_r_peaks(np.zeros(5000), 500.0)) == 0
    with pytest.raises(HeartRateError, match="at least 2 are needed"):
        heart_rate_bpm(channel(np.zeros(5000), 500.0))


def test_single_beat_is_refused() -> None:
    t = np.arange(1500) / 500.0
    one_beat = np.exp(-0.5 * ((t - 1.5) / 0.010) ** 2)
    with pytest.raises(HeartRateError, match="found 1 beat"):
        heart_rate_bpm(channel(one_beat, 500.0))


@pytest.mark.parametrize(
    ("samples", "fs"),
    [
        (np.zeros((2, 5000)), 500.0),
        (np.zeros(5000), 0.0),
        (np.zeros(5000), float("nan")),
        (np.full(5000, np.nan), 500.0),
    ],
)
def test_malformed_signals_are_refused(samples: np.ndarray, fs: float) -> None:
    with pytest.raises(HeartRateError):
        detect_r_peaks(samples, fs)


def test_heart_rate_error_is_a_value_error() -> None:
    assert issubclass(HeartRateError, ValueError)
