"""Heart rate from an ECG lead: a small Pan–Tompkins-style R-peak detector in numpy.

Pure functions: arrays and numbers in, arrays and numbers out. We compute the rate ourselves
rather than trusting the cart's stored value because many files (and every General ECG from a
home device) store none, and because comparing the two catches a mislabelled or broken file.

The detector follows Pan & Tompkins, "A Real-Time QRS Detection Algorithm", IEEE Trans.
Biomed. Eng. 32(3), 1985, with numpy-only filters in place of their integer IIR filters:

1. band-pass as a difference of two moving averages, passing roughly 2–18 Hz around the
   5–15 Hz where QRS energy lies (the short average removes noise and mains hum, the long one
   baseline wander and much of the slow P and T waves);
2. five-point derivative, to favour the steep QRS slopes;
3. squaring, making everything positive and emphasising large slopes;
4. moving-window integration over 150 ms (about one QRS width), giving one hump per beat;
5. adaptive thresholds: running signal and noise peak levels (SPKI, NPKI) updated with weight
   1/8 per peak, threshold = NPKI + (SPKI - NPKI) / 4, initialised from the first 2 s; a 200 ms
   refractory period; a candidate within 360 ms of a beat and less than half as steep is a
   T wave; search-back at threshold / 2 when no beat came for 1.66 mean RR;
6. refinement: each beat is moved to the largest deflection of the baseline-corrected raw
   signal near the hump, in the lead's dominant QRS polarity, so RR intervals are measured
   between true R peaks rather than between smeared integrator humps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from devices.dicom.ecg import MDC_ECG_LEAD, EcgChannel, EcgRecord

MIN_DURATION_S = 2.0
REFRACTORY_S = 0.200
INTEGRATION_S = 0.150
T_WAVE_S = 0.360
_LEARNING_S = 2.0
_SEARCH_BACK_RR = 1.66
_LEAD_PREFERENCE = (MDC_ECG_LEAD + 2, MDC_ECG_LEAD + 1)  # MDC_ECG_LEAD_II, MDC_ECG_LEAD_I
_LABEL_PREFERENCE = ("Lead II", "Lead I")


class HeartRateError(ValueError):
    """The signal cannot give a heart rate: too short, flat, or fewer than two beats."""


@dataclass(frozen=True)
class HeartRate:
    """A heart rate measured from one lead: bpm = 60000 / rr_ms_mean over n_beats R peaks."""

    bpm: float
    rr_ms_mean: float
    n_beats: int
    lead: str


def detect_r_peaks(samples: np.ndarray, fs: float) -> np.ndarray:
    """Return the sample indices of the R peaks in one ECG lead, in ascending order.

    Units do not matter (thresholds adapt to the signal). Raises ``HeartRateError`` for a
    signal shorter than 2 s, a non-positive sampling frequency, or non-finite samples.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise HeartRateError(f"expected one lead (1-D samples), got shape {x.shape}")
    if not np.isfinite(fs) or fs <= 0:
        raise HeartRateError(f"sampling frequency must be positive, got {fs}")
    if len(x) / fs < MIN_DURATION_S:
        raise HeartRateError(
            f"signal lasts {len(x) / fs:.2f} s; at least {MIN_DURATION_S:.0f} s are needed"
        )
    if not np.all(np.isfinite(x)):
        raise HeartRateError("signal contains NaN or infinite samples")
    if np.ptp(x) == 0:
        return np.empty(0, dtype=np.intp)

    slope = _slope(x, fs)
    integrated = _moving_average(slope**2, round(INTEGRATION_S * fs))
    humps = _detect_humps(integrated, np.abs(slope), fs)
    return _refine_on_raw(x, humps, fs)


def heart_rate_bpm(source: EcgRecord | EcgChannel) -> HeartRate:
    """Heart rate of a record (its best limb lead, see ``choose_lead``) or of one channel.

    Raises ``HeartRateError`` when the lead is shorter than 2 s or has fewer than two beats.
    """
    channel = choose_lead(source) if isinstance(source, EcgRecord) else source
    peaks = detect_r_peaks(channel.samples, channel.sampling_frequency)
    if len(peaks) < 2:
        raise HeartRateError(
            f"{channel.label}: found {len(peaks)} beat(s); at least 2 are needed for a rate"
        )
    rr_ms_mean = float(np.mean(np.diff(peaks))) * 1000.0 / channel.sampling_frequency
    return HeartRate(
        bpm=60000.0 / rr_ms_mean,
        rr_ms_mean=rr_ms_mean,
        n_beats=len(peaks),
        lead=channel.label,
    )


def choose_lead(record: EcgRecord) -> EcgChannel:
    """The channel to count beats on: Lead II, else Lead I, else the first channel.

    Lead II first because it usually shows the tallest, cleanest R wave (the heart's axis points
    roughly along it); Lead I next as the other standard limb lead. Channels come from the first
    group lasting at least 2 s, preferring ORIGINAL recordings over DERIVED ones such as a
    median beat, which is one averaged beat and has no rhythm.
    """
    groups = [g for g in record.groups if g.channels and g.duration_s >= MIN_DURATION_S]
    if not groups:
        raise HeartRateError("no waveform group lasts at least 2 s")
    groups.sort(key=lambda g: (g.originality or "").upper() != "ORIGINAL")
    channels = groups[0].channels
    for code, label in zip(_LEAD_PREFERENCE, _LABEL_PREFERENCE, strict=True):
        for channel in channels:
            if channel.mdc_lead_code == code or channel.label == label:
                return channel
    return channels[0]


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average; edges padded with the end values so they do not ring."""
    width = max(1, int(width))
    padded = np.pad(x, (width // 2, width - 1 - width // 2), mode="edge")
    cumulative = np.cumsum(np.concatenate(([0.0], padded)))
    return (cumulative[width:] - cumulative[:-width]) / width


def _slope(x: np.ndarray, fs: float) -> np.ndarray:
    """Steps 1–2: band-pass, then the five-point derivative."""
    centred = x - np.median(x)
    # A boxcar of width L is a low-pass with its -3 dB point near 0.44 fs / L: ~18 Hz for the
    # short one (L = fs/40 samples), ~2 Hz for the long one (L = fs/5); their difference is a
    # band-pass over roughly 2–18 Hz, which holds the 5–15 Hz where QRS energy lies.
    band = _moving_average(centred, round(fs / 40)) - _moving_average(centred, round(fs / 5))
    # Pan–Tompkins five-point derivative: (2x[n+2] + x[n+1] - x[n-1] - 2x[n-2]) / 8 per sample.
    step = max(1, round(fs / 200))  # their taps are 5 ms apart (200 Hz); keep that spacing
    kernel = np.zeros(4 * step + 1)
    kernel[[0, step, 3 * step, 4 * step]] = [2.0, 1.0, -1.0, -2.0]
    padded = np.pad(band, 2 * step, mode="edge")
    return np.convolve(padded, kernel, mode="valid") / 8.0


def _local_maxima(y: np.ndarray) -> np.ndarray:
    """Indices of local maxima (plateaus counted once, at their first sample)."""
    rising = np.diff(y) > 0
    falling = np.diff(y) <= 0
    return np.flatnonzero(rising[:-1] & falling[1:]) + 1


def _detect_humps(y: np.ndarray, steepness: np.ndarray, fs: float) -> np.ndarray:
    """Step 5: Pan–Tompkins adaptive thresholding of the integrated signal's peaks.

    ``steepness`` is the absolute band-passed slope, used for the paper's T-wave test.
    """
    candidates = _local_maxima(y)
    if len(candidates) == 0:
        return candidates
    refractory = round(REFRACTORY_S * fs)
    t_wave_zone = round(T_WAVE_S * fs)
    window = round(INTEGRATION_S * fs)

    def steepest(index: int, reach: int) -> tuple[int, float]:
        """Where, and how steep, the slope is at its steepest within index ± reach."""
        start = max(0, index - reach)
        at = start + int(np.argmax(steepness[start : index + reach + 1]))
        return at, float(steepness[at])

    learning = y[: round(_LEARNING_S * fs)]
    spki = 0.25 * float(learning.max())
    npki = 0.5 * float(learning.mean())
    spki_before_beat = spki
    beats: list[int] = []
    noise: list[int] = []  # candidates judged noise, kept for search-back

    for index in candidates:
        height = float(y[index])
        threshold = npki + 0.25 * (spki - npki)
        if len(beats) >= 2:
            rr_mean = float(np.mean(np.diff(beats[-8:])))
            if index - beats[-1] > _SEARCH_BACK_RR * rr_mean:
                # A beat was probably missed: take the tallest noise peak since the last beat
                # that clears half the threshold, as the paper's search-back does.
                missed = [n for n in noise if n - beats[-1] > refractory]
                missed = [n for n in missed if index - n > refractory]
                if missed:
                    best = max(missed, key=lambda n: y[n])
                    if y[best] > 0.5 * threshold:
                        beats.append(best)
                        spki_before_beat = spki
                        spki = 0.25 * float(y[best]) + 0.75 * spki
                noise.clear()
        if height > threshold:
            if beats and index - beats[-1] < refractory:
                if height > y[beats[-1]]:
                    # The taller of two humps within 200 ms is the beat; its height, not the
                    # first one's, is what the signal level should learn.
                    beats[-1] = int(index)
                    spki = 0.125 * height + 0.875 * spki_before_beat
                continue
            if beats:
                # The integration is centred, so a hump at i sums the slopes within i ± half a
                # window; a QRS can break into several humps, so look a whole window around the
                # beat for its steepest point, and time the T-wave zone from there.
                qrs_at, qrs_slope = steepest(beats[-1], window)
                _, slope = steepest(int(index), window // 2)
                if index - qrs_at < t_wave_zone and slope < 0.5 * qrs_slope:
                    # Within 360 ms of a QRS and less than half as steep: a T wave.
                    noise.append(int(index))
                    npki = 0.125 * height + 0.875 * npki
                    continue
            beats.append(int(index))
            spki_before_beat = spki
            spki = 0.125 * height + 0.875 * spki
            noise.clear()
        else:
            noise.append(int(index))
            npki = 0.125 * height + 0.875 * npki
    return np.asarray(beats, dtype=np.intp)


def _refine_on_raw(x: np.ndarray, humps: np.ndarray, fs: float) -> np.ndarray:
    """Step 6: move each detection to the R peak of the baseline-corrected raw signal.

    The (centred) integrator's hump spans the QRS, and a wide QRS can break into several humps:
    the R peak lies within one integration window either side of the detected hump. The window
    stays short of the T wave, which peaks some 250–350 ms after the R.
    """
    if len(humps) == 0:
        return humps
    detrended = x - _moving_average(x, round(0.6 * fs))
    reach = round(INTEGRATION_S * fs)
    windows = [(max(0, h - reach), min(len(x), h + reach + 1)) for h in humps]
    # Dominant polarity: an upright R (most leads) or a deep QS complex (e.g. aVR).
    highs = [detrended[a:b].max() for a, b in windows]
    lows = [-detrended[a:b].min() for a, b in windows]
    sign = 1.0 if np.median(highs) >= np.median(lows) else -1.0
    peaks = [a + int(np.argmax(sign * detrended[a:b])) for a, b in windows]
    # Two humps can refine onto the same R peak at window edges; keep one per refractory period.
    refractory = round(REFRACTORY_S * fs)
    kept: list[int] = []
    for peak in sorted(peaks):
        if not kept or peak - kept[-1] >= refractory:
            kept.append(peak)
        elif sign * detrended[peak] > sign * detrended[kept[-1]]:
            kept[-1] = peak
    return np.asarray(kept, dtype=np.intp)
