"""The music bed: decode a brand track, fit it to the clip, hit the loudness target.

* :func:`load_audio` decodes any format through the ffmpeg binary of imageio-ffmpeg.
* :func:`integrated_loudness` is ITU-R BS.1770 / EBU R128 integrated loudness (LUFS),
  measured with pyloudnorm.
* :func:`true_peak_db` is the BS.1770 true peak (dBTP): the peak of the signal
  oversampled 4x with a polyphase FIR (``scipy.signal.resample_poly``).
* :func:`fit_music` trims or loops (equal-power crossfade at each seam) to the exact
  duration, fades in and out, sets the gain for the target loudness and runs a
  look-ahead true-peak limiter, repeating gain + limiting until the loudness is within
  0.2 LU of the target. The limiter aims 0.5 dB under the ceiling so that AAC encoding
  (which adds a little overshoot) still meets it.

Example:
    >>> import numpy as np
    >>> from brandstudio.post.music import fit_music, integrated_loudness, true_peak_db
    >>> sr = 48000
    >>> t = np.arange(2 * sr) / sr
    >>> track = np.stack([0.05 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1).astype(np.float32)
    >>> bed = fit_music(track, sr, 3.0, loudness=-14.0, true_peak=-1.0, fade_in=0.1, fade_out=0.5)
    >>> bed.shape
    (144000, 2)
    >>> abs(integrated_loudness(bed, sr) + 14.0) < 0.3, true_peak_db(bed, sr) <= -1.0
    (True, True)
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np

from brandstudio.errors import AssetError, PostError

__all__ = [
    "fit_music",
    "integrated_loudness",
    "limit_true_peak",
    "load_audio",
    "loop_to_length",
    "true_peak_db",
]

#: pyloudnorm's gating block; shorter audio has no integrated loudness
MIN_LOUDNESS_SECONDS = 0.4
_TOLERANCE_LU = 0.2
_MARGIN_DB = 0.5


def load_audio(path: str | Path, sample_rate: int = 48000) -> np.ndarray:
    """Decode the first audio stream of ``path`` to float32 ``(n, 2)`` at ``sample_rate``.

    Mono is copied to both channels at full level; more than two channels are downmixed by
    ffmpeg. Raises :class:`~brandstudio.errors.AssetError` if the file is missing, cannot
    be decoded, or has no audio stream.
    """
    from brandstudio.encode import ffmpeg_exe

    path = Path(path)
    if not path.is_file():
        raise AssetError(
            f"audio file not found: {path.name}",
            file=str(path),
            fix="check the audio.tracks paths in brand.toml",
        )
    exe = ffmpeg_exe()
    info = subprocess.run(
        [exe, "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, text=True, check=False
    ).stderr
    streams = re.findall(r"Stream #\S+.*?: Audio: (.*)", info)
    if not streams:
        why = "it has no audio stream" if "Stream #" in info else "it is not a media file ffmpeg can read"
        raise AssetError(
            f"could not decode the audio track {path.name}: {why}",
            file=str(path),
            fix="export the track again (WAV, FLAC, MP3, AAC/M4A or OGG)",
        )
    mix = ["-af", "pan=stereo|c0=c0|c1=c0"] if re.search(r",\s*mono\b", streams[0]) else ["-ac", "2"]
    cmd = [
        exe, "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", *mix,
        "-ar", str(int(sample_rate)), "-f", "f32le", "-c:a", "pcm_f32le", "pipe:1",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, check=False)
    data = np.frombuffer(proc.stdout, dtype="<f4")
    if proc.returncode != 0 or data.size < 2:
        raise AssetError(
            f"could not decode the audio track {path.name}: "
            f"{proc.stderr.decode('utf-8', 'replace').strip()[-400:] or 'no samples'}",
            file=str(path),
            fix="export the track again (WAV, FLAC, MP3, AAC/M4A or OGG)",
        )
    audio = data[: data.size // 2 * 2].reshape(-1, 2).astype(np.float32)
    if not np.isfinite(audio).all():
        raise AssetError(f"the audio track {path.name} holds NaN/inf samples", file=str(path))
    return audio


def _stereo(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[1] not in (1, 2):
        raise ValueError(f"`audio` must have shape (n,), (n, 1) or (n, 2), got {audio.shape}")
    return np.repeat(audio, 2, axis=1) if audio.shape[1] == 1 else audio


def integrated_loudness(audio: np.ndarray, sr: int) -> float:
    """Integrated loudness in LUFS (BS.1770-4 gating, via pyloudnorm); ``-inf`` for silence.

    Raises :class:`~brandstudio.errors.PostError` for audio shorter than 0.4 s (one
    gating block), which has no integrated loudness.
    """
    import pyloudnorm

    audio = _stereo(audio)
    if audio.shape[0] < int(np.ceil(MIN_LOUDNESS_SECONDS * sr)) + 1:
        raise PostError(
            f"integrated loudness needs at least {MIN_LOUDNESS_SECONDS} s of audio, "
            f"got {audio.shape[0] / sr:.3f} s",
            fix="measure a longer excerpt (fit_music handles short clips by measuring the looped track)",
        )
    return float(pyloudnorm.Meter(sr).integrated_loudness(audio))


def _loudness_any_length(audio: np.ndarray, sr: int) -> float:
    """Integrated loudness; audio under one gating block is measured tiled to 1 s."""
    need = int(sr * 1.0)
    if audio.shape[0] < int(np.ceil(MIN_LOUDNESS_SECONDS * sr)) + 1:
        audio = np.tile(audio, (need // max(1, audio.shape[0]) + 1, 1))
    return integrated_loudness(audio, sr)


def _oversampled_peaks(audio: np.ndarray) -> np.ndarray:
    """Per-sample true peak (linear): max |x| over the 4 oversampled points of each sample and channel."""
    from scipy.signal import resample_poly

    up = np.abs(resample_poly(audio, 4, 1, axis=0))
    n = audio.shape[0]
    return up[: n * 4].reshape(n, 4, -1).max(axis=(1, 2))


def true_peak_db(audio: np.ndarray, sr: int) -> float:
    """True peak in dBTP: the peak of ``audio`` oversampled 4x (BS.1770 style)."""
    audio = _stereo(audio)
    peak = float(_oversampled_peaks(audio).max()) if audio.size else 0.0
    return 20 * np.log10(peak) if peak > 0 else float("-inf")


def loop_to_length(audio: np.ndarray, n: int, sr: int, crossfade: float = 0.05) -> np.ndarray:
    """Trim ``audio`` to ``n`` samples, or loop it with an equal-power crossfade at each seam."""
    audio = _stereo(audio)
    if audio.shape[0] == 0:
        raise PostError("the music track is empty")
    if audio.shape[0] >= n:
        return audio[:n].copy()
    xf = int(min(crossfade * sr, audio.shape[0] // 4))
    theta = np.linspace(0.0, np.pi / 2, xf)[:, None] if xf > 0 else None
    pieces = [audio]
    total = audio.shape[0]
    while total < n:
        pieces.append(audio)
        total += audio.shape[0] - xf
    out = np.empty((total, 2))
    pos = 0
    for k, piece in enumerate(pieces):
        if k == 0 or xf == 0:
            out[pos : pos + piece.shape[0]] = piece
        else:
            seam = out[pos : pos + xf]
            seam[...] = seam * np.cos(theta) + piece[:xf] * np.sin(theta)
            out[pos + xf : pos + piece.shape[0]] = piece[xf:]
        pos += piece.shape[0] - xf
    return out[:n]


def _box(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of odd ``width`` (edges padded with the edge value)."""
    if width <= 1:
        return x
    half = width // 2
    padded = np.pad(x, (half, half), mode="edge")
    c = np.concatenate([[0.0], np.cumsum(padded)])
    return (c[width:] - c[:-width]) / width


def limit_true_peak(
    audio: np.ndarray, sr: int, ceiling_db: float, *, lookahead: float = 0.003, hold: float = 0.02
) -> np.ndarray:
    """Look-ahead true-peak limiter: a smooth gain envelope keeps the 4x-oversampled peak under ``ceiling_db``.

    The needed gain per sample (ceiling / oversampled peak, at most 1) is spread by a
    sliding minimum over ``[n - lookahead, n + lookahead + hold]`` and smoothed by two
    moving averages no wider than the look-ahead, so the gain is already down when a peak
    arrives, and it eases back after the hold.
    """
    from scipy.ndimage import minimum_filter1d

    audio = _stereo(audio)
    ceiling = 10 ** (ceiling_db / 20)
    peaks = _oversampled_peaks(audio)
    need = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))
    if need.min() >= 1.0:
        return audio.copy()
    la, hd = max(1, int(lookahead * sr)), int(hold * sr)
    size = 2 * la + hd + 1
    # window [n - la - hd, n + la]: the gain falls la samples before a peak, holds hd after it
    gain = minimum_filter1d(need, size=size, origin=(size - 1) // 2 - la, mode="nearest")
    half = la if la % 2 else la - 1  # two boxes of odd width <= la + 1 stay inside +-la
    gain = _box(_box(gain, half), half)
    gain = np.minimum(gain, 1.0)
    return audio * gain[:, None]


def fit_music(
    audio: np.ndarray,
    sr: int,
    duration: float,
    *,
    loudness: float = -14.0,
    true_peak: float = -1.0,
    fade_in: float = 0.3,
    fade_out: float = 1.0,
) -> np.ndarray:
    """Fit a music track to a clip: exact length, fades, target loudness, true-peak ceiling.

    Args:
        audio: ``(n, 2)`` or mono float samples at ``sr``.
        duration: the clip length in seconds; the result has ``round(duration * sr)`` samples.
        loudness: integrated loudness target, LUFS.
        true_peak: true-peak ceiling, dBTP (the limiter aims 0.5 dB lower).
        fade_in / fade_out: seconds (raised-cosine curves; each at most half the clip).

    Returns float32 ``(round(duration * sr), 2)``. Raises
    :class:`~brandstudio.errors.PostError` for a silent track.
    """
    if not duration > 0:
        raise ValueError(f"`duration` must be positive, got {duration}")
    n = round(duration * sr)
    # 1. length: trim, or loop with crossfades
    y = loop_to_length(audio, n, sr)
    # 2. fades (raised cosine)
    for seconds, head in ((fade_in, True), (fade_out, False)):
        k = int(min(max(seconds, 0.0) * sr, n // 2))
        if k > 1:
            ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, k))[:, None]
            if head:
                y[:k] *= ramp
            else:
                y[-k:] *= ramp[::-1]
    # 3. gain to the target, 4. true-peak limit; repeat until the loudness is on target
    measured = _loudness_any_length(y, sr)
    if not np.isfinite(measured):
        raise PostError(
            "the music track is silent (its loudness is -inf LUFS) over the clip", fix="pick another track"
        )
    gain_db = loudness - measured
    ceiling = true_peak - _MARGIN_DB
    out = y
    for _ in range(12):
        out = limit_true_peak(y * 10 ** (gain_db / 20), sr, ceiling)
        error = loudness - _loudness_any_length(out, sr)
        if abs(error) <= _TOLERANCE_LU:
            break
        gain_db += error
        if gain_db > 60:  # the limiter eats every step: the target cannot be reached under the ceiling
            break
    return out.astype(np.float32)
