"""The music bed: decode a brand track, fit it to the clip, hit the loudness target.

* :func:`load_audio` decodes any format through the ffmpeg binary of imageio-ffmpeg.
* :func:`integrated_loudness` is ITU-R BS.1770 / EBU R128 integrated loudness (LUFS),
  measured with pyloudnorm.
* :func:`true_peak_db` is the BS.1770 true peak (dBTP): the peak of the signal
  oversampled 4x with a polyphase FIR (``scipy.signal.resample_poly``).
* :func:`cut_cost` is how bad a cut would be at each moment of a track: an onset envelope
  (spectral flux of the log-magnitude STFT, plus the RMS level) smoothed over a fraction of
  a beat, so its minima lie *between* beats, away from drum hits and note attacks.
* :func:`plan_length` chooses where to cut: when the track is longer than the clip, the start
  offset (at most 0.75 s in) that puts both the start and the end between beats; when it must
  loop, a loop-out point near the end and a loop-in point near the start, both between beats
  and with matching rhythmic context around them (so the beat grid runs on across the seam),
  plus the start offset that makes the clip end between beats too.
  :func:`loop_to_length` renders the plan, joining each seam with a short equal-power crossfade.
* :func:`fit_music` fits to the exact duration that way, fades in and out, sets the gain
  for the target loudness and runs a look-ahead true-peak limiter, repeating gain +
  limiting until the loudness is within 0.2 LU of the target (:func:`normalise`). The
  limiter aims 0.5 dB under the ceiling so that AAC encoding (which adds a little
  overshoot) still meets it.

Example:
    >>> import numpy as np
    >>> from brandstudio.audio.music import fit_music, integrated_loudness, true_peak_db
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brandstudio.errors import AssetError, PostError
from brandstudio.files import Limit
from brandstudio.media import ffmpeg_exe, ffmpeg_info
from brandstudio.profile.assets import ASSET_CHECKS

__all__ = [
    "MAX_AUDIO_SECONDS",
    "LengthPlan",
    "check_audio",
    "cut_cost",
    "fit_music",
    "integrated_loudness",
    "limit_true_peak",
    "load_audio",
    "loop_to_length",
    "max_audio_seconds",
    "music_seconds",
    "normalise",
    "plan_length",
    "true_peak_db",
]

#: pyloudnorm's gating block; shorter audio has no integrated loudness
MIN_LOUDNESS_SECONDS = 0.4
_TOLERANCE_LU = 0.2
_MARGIN_DB = 0.5


#: the most audio :func:`load_audio` decodes when the caller names no length (seconds);
#: ``$BRANDSTUDIO_MAX_AUDIO_SECONDS`` raises it
MAX_AUDIO = Limit("BRANDSTUDIO_MAX_AUDIO_SECONDS", 600.0, "seconds")
MAX_AUDIO_SECONDS = MAX_AUDIO.default
#: how much of a track the profile check decodes, at its start and before its stated end
CHECK_SECONDS = 0.5
_FIX_EXPORT = "export the track again (WAV, FLAC, MP3, AAC/M4A or OGG)"


def max_audio_seconds() -> float:
    """The most seconds decoded without a clip to fit: ``$BRANDSTUDIO_MAX_AUDIO_SECONDS``, else 600."""
    return MAX_AUDIO.value()


def load_audio(
    path: str | Path, sample_rate: int = 48000, *, keep_mono: bool = False, seconds: float | None = None
) -> np.ndarray:
    """Decode the first audio stream of ``path`` to float32 ``(n, 2)`` at ``sample_rate``.

    Only the first ``seconds`` are decoded (ffmpeg stops there): a render asks for what its clip
    needs (:func:`music_seconds`), so a file that decodes to hours (a long silence compresses to
    almost nothing) costs no more than a short one. Without ``seconds`` at most
    :func:`max_audio_seconds` are decoded, and a longer file is an error. Nothing is sized from
    what the file's header says.

    Mono is copied to both channels at full level (``keep_mono=True``: returned as ``(n, 1)``,
    for measuring it as it is); more than two channels are downmixed by ffmpeg. Raises
    :class:`~brandstudio.errors.AssetError` if the file is missing, cannot be decoded, has
    no audio stream, holds NaN/inf samples or decodes to much less than its header states
    (damaged or truncated).
    """

    path = Path(path)
    if not path.is_file():
        raise AssetError(
            f"audio file not found: {path.name}",
            file=str(path),
            fix="check the audio.tracks paths in brand.toml",
        )
    limit = max_audio_seconds() if seconds is None else max(float(seconds), 1.0 / sample_rate)
    mono = _first_audio_stream_is_mono(path)
    channels = 1 if mono and keep_mono else 2
    audio = _decode(path, sample_rate, channels, mono, start=0.0, seconds=limit)
    got = audio.shape[0] / sample_rate
    if seconds is None and got >= limit - 1.0 / sample_rate:
        raise AssetError(
            f"the audio file {path.name} is longer than {limit:g} s, the most brandstudio decodes whole",
            file=str(path),
            fix=f"trim the file, or {MAX_AUDIO.fix()}",
        )
    stated = _stated_audio_seconds(path)
    if stated:  # a truncated download decodes (with errors ffmpeg only logs) to less than its header says
        want = min(stated, limit)
        if got < 0.9 * want - 0.1:
            raise AssetError(
                f"the audio track {path.name} is damaged or truncated: it decodes to {got:.2f} s of "
                f"the {stated:.2f} s its header states",
                file=str(path),
                fix="export or download the track again",
            )
    return audio


def music_seconds(duration: float, bpm: float | None = None) -> float:
    """How much of a track :func:`fit_music` can use for a clip of ``duration`` seconds: the clip,
    the most of the head :func:`plan_length` may skip, and the stretch it analyses past the cut.
    Decoding this much (``load_audio(..., seconds=music_seconds(d, bpm))``) fits the track
    exactly as decoding all of it would.

    Example:
        >>> music_seconds(6.0, bpm=120)
        8.75
    """
    beat = 60.0 / bpm if bpm else 0.24
    return float(duration) + MAX_SKIP + 0.5 + beat + 1.0


def check_audio(path: str | Path) -> None:
    """The profile's check of a music track (``ASSET_CHECKS["audio"]``), cheap at any length:
    decode :data:`CHECK_SECONDS` at its start and just before the end its header states (a
    truncated file has nothing there), each finite and not empty."""
    path = Path(path)
    load_audio(path, 16000, seconds=CHECK_SECONDS)
    stated = _stated_audio_seconds(path)
    if stated and stated > 4 * CHECK_SECONDS:
        tail_start = stated - 2 * CHECK_SECONDS
        tail = _decode(path, 16000, 1, True, start=tail_start, seconds=CHECK_SECONDS)
        if tail.shape[0] < 0.5 * CHECK_SECONDS * 16000:
            raise AssetError(
                f"the audio track {path.name} is damaged or truncated: nothing decodes at "
                f"{tail_start:.2f} s of the {stated:.2f} s its header states",
                file=str(path),
                fix="export or download the track again",
            )


def _first_audio_stream_is_mono(path: Path) -> bool:
    info = ffmpeg_info(path)
    streams = re.findall(r"Stream #\S+.*?: Audio: (.*)", info)
    if not streams:
        why = "it has no audio stream" if "Stream #" in info else "it is not a media file ffmpeg can read"
        raise AssetError(
            f"could not decode the audio track {path.name}: {why}", file=str(path), fix=_FIX_EXPORT
        )
    return bool(re.search(r",\s*mono\b", streams[0]))


def _decode(
    path: Path, sample_rate: int, channels: int, mono: bool, *, start: float, seconds: float
) -> np.ndarray:
    """``seconds`` of the first audio stream from ``start`` as float32 ``(n, channels)``. ffmpeg
    stops after ``seconds`` of output (``-t``), so the bytes read are bounded whatever the file says."""
    mix = ["-ac", "1"] if channels == 1 else ["-af", "pan=stereo|c0=c0|c1=c0"] if mono else ["-ac", "2"]
    seek = ["-ss", f"{start:.6f}"] if start > 0 else []
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", *seek, "-i", str(path), "-map", "0:a:0", *mix,
        "-ar", str(int(sample_rate)), "-t", f"{seconds:.6f}", "-f", "f32le", "-c:a", "pcm_f32le", "pipe:1",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, check=False)
    data = np.frombuffer(proc.stdout, dtype="<f4")
    if proc.returncode != 0 or (start == 0 and data.size < channels):
        raise AssetError(
            f"could not decode the audio track {path.name}: {_ffmpeg_reason(proc.stderr) or 'no samples'}",
            file=str(path),
            fix=_FIX_EXPORT,
        )
    audio = data[: data.size // channels * channels].reshape(-1, channels)
    if not np.isfinite(audio).all():
        raise AssetError(
            f"the audio track {path.name} holds NaN/inf samples", file=str(path), fix=_FIX_EXPORT
        )
    return audio


_FFMPEG_NOISE = re.compile(r"Terminating thread|Task finished|Conversion failed|Nothing was written")


def _ffmpeg_reason(stderr: bytes) -> str:
    """The last failure ffmpeg named (not its closing "terminating" lines), without the
    ``[aac @ 0x...]`` prefixes, shortened."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    useful = [ln for ln in lines if not _FFMPEG_NOISE.search(ln)] or lines
    return re.sub(r"^(\[[^\]]*\]\s*)+", "", useful[-1])[-300:] if useful else ""


def _stated_audio_seconds(path: Path) -> float | None:
    """The length of the first audio stream as its container states it (PyAV), if it states one."""
    try:
        import av

        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            return float(stream.duration * stream.time_base) if stream.duration else None
    except Exception:  # noqa: BLE001 - unknown is fine: ffmpeg already decoded the file
        return None


def _channels(audio: np.ndarray) -> np.ndarray:
    """``audio`` as float64 ``(n, 1)`` (mono) or ``(n, 2)``."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[1] not in (1, 2):
        raise ValueError(f"`audio` must have shape (n,), (n, 1) or (n, 2), got {audio.shape}")
    return audio


def to_stereo(audio: np.ndarray) -> np.ndarray:
    audio = _channels(audio)
    return np.repeat(audio, 2, axis=1) if audio.shape[1] == 1 else audio


def integrated_loudness(audio: np.ndarray, sr: int) -> float:
    """Integrated loudness in LUFS (BS.1770-4 gating, via pyloudnorm); ``-inf`` for silence.

    Mono (``(n,)`` or ``(n, 1)``) is measured as one channel, as BS.1770 and ffmpeg's
    ``ebur128`` do (the same signal as dual-mono stereo measures 3 LU louder).
    Raises :class:`~brandstudio.errors.PostError` for audio shorter than 0.4 s (one
    gating block), which has no integrated loudness.
    """
    import pyloudnorm

    audio = _channels(audio)
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
    """True peak in dBTP: the peak of ``audio`` (mono or stereo) oversampled 4x (BS.1770 style)."""
    audio = _channels(audio)
    peak = float(_oversampled_peaks(audio).max()) if audio.size else 0.0
    return float(20 * np.log10(peak)) if peak > 0 else float("-inf")


#: analysis hop of :func:`cut_cost`, seconds
CUT_HOP = 0.005
#: the most of a track's head skipped to put the start and the end of a trimmed clip between beats
MAX_SKIP = 0.75
#: how far from each end of a track the loop points may be looked for, seconds (at most a third of it)
LOOP_SEARCH = 2.0


def cut_cost(audio: np.ndarray, sr: int, *, bpm: float | None = None, hop: float = CUT_HOP) -> np.ndarray:
    """How audible a cut would be, every ``hop`` seconds of ``audio``: low between beats, high on them.

    The onset envelope is the spectral flux (summed positive change of the log-magnitude STFT,
    1024-point Hann frames) scaled by its 95th percentile (at least a tenth of its peak), plus the frame RMS scaled by its
    maximum; it is then smoothed with a Gaussian of a sixth of a beat (``60 / bpm / 6`` s; 40 ms
    without a tempo), so a point is cheap only when onsets are far from it on both sides.
    Returns float ``(ceil(n / hop_samples),)``; entry ``k`` is about sample ``k * hop * sr``.

    Example:
        >>> import numpy as np
        >>> sr = 48000; x = np.zeros(2 * sr); x[::sr // 2] = 1.0   # clicks every 0.5 s
        >>> c = cut_cost(x, sr, bpm=120)
        >>> t = (np.argmin(c[100:200]) + 100) * 0.005    # the cheapest cut between the clicks at 0.5 and 1.0 s
        >>> bool(abs(t - 0.75) < 0.02)
        True
    """
    from scipy.ndimage import gaussian_filter1d

    x = to_stereo(audio).mean(axis=1)
    step = max(1, int(round(hop * sr)))
    n_fft = 1024
    frames_n = max(1, -(-x.shape[0] // step))
    # reflected edges: the track's ends are not onsets
    padded = np.pad(x, (n_fft // 2, n_fft // 2 + step * frames_n - x.shape[0]), mode="reflect")
    win = np.hanning(n_fft)
    flux, rms = np.empty(frames_n), np.empty(frames_n)
    prev = None
    for a in range(0, frames_n, 1024):  # blocks of frames: bounded memory for long tracks
        idx = np.arange(n_fft)[None, :] + step * np.arange(a, min(frames_n, a + 1024))[:, None]
        block = padded[idx]
        logmag = np.log1p(100.0 * np.abs(np.fft.rfft(block * win, axis=1)))
        before = logmag[:1] if prev is None else prev
        flux[a : a + len(block)] = np.maximum(np.diff(logmag, axis=0, prepend=before), 0.0).sum(axis=1)
        rms[a : a + len(block)] = np.sqrt((block**2).mean(axis=1))
        prev = logmag[-1:]
    env = flux / (max(np.percentile(flux, 95), 0.1 * flux.max()) + 1e-9) + rms / (rms.max() + 1e-12)
    beat = 60.0 / bpm if bpm else 0.24
    return gaussian_filter1d(env, sigma=max(1.0, beat / 6 / hop), mode="nearest")


@dataclass(frozen=True)
class LengthPlan:
    """Where a track is cut to fill ``n`` samples (all in samples of the track).

    The output plays ``track[start:loop_out]``, then ``track[loop_in:loop_out]`` again and again,
    cut at ``n`` samples; each seam (``loop_out`` -> ``loop_in``) is an equal-power crossfade
    of ``crossfade`` samples centred on it. Without a loop (``loop_in is None``) it is
    ``track[start:start + n]``. ``end`` is where in the track the output stops.
    """

    n: int
    start: int
    end: int
    loop_in: int | None = None
    loop_out: int | None = None
    crossfade: int = 0

    @property
    def seams(self) -> tuple[int, ...]:
        """Output sample indices where a seam (loop_out -> loop_in) falls."""
        if self.loop_in is None:
            return ()
        first, period = self.loop_out - self.start, self.loop_out - self.loop_in
        return tuple(range(first, self.n, period))


def _at(cost: np.ndarray, samples: np.ndarray, step: int) -> np.ndarray:
    return cost[np.clip(np.round(np.asarray(samples) / step).astype(int), 0, len(cost) - 1)]


def plan_length(
    audio: np.ndarray, n: int, sr: int, *, crossfade: float = 0.05, bpm: float | None = None
) -> LengthPlan:
    """Choose beat-free cut points to fill ``n`` samples from ``audio`` (see :class:`LengthPlan`).

    * track long enough: start offset ``s`` in ``[0, min(0.75 s, len - n)]`` minimising the cut
      cost at ``s`` and at ``s + n`` (a small penalty keeps ``s`` near 0);
    * track too short: a loop-out point in the last ~2 s (at most a third of the track) and a
      loop-in point in the first ~2 s, minimising the cut cost at both plus how differently the
      onset envelope runs around them (over +-0.5 s), so the loop length keeps the beat; then
      the start offset (up to 0.75 s, within the loop) that puts the clip's end between beats.

    Tracks too short to search (under ~4 crossfades) loop whole, seam at the end.
    """
    x = to_stereo(audio)
    L = x.shape[0]
    if L == 0:
        raise PostError("the music track is empty")
    step = max(1, int(round(CUT_HOP * sr)))
    xf = int(min(crossfade * sr, L // 4)) // 2 * 2
    h = xf // 2
    if L >= n:
        top = min(int(MAX_SKIP * sr), L - n)
        cand = np.arange(0, top + 1, step)
        # only the head and the stretch around the end are analysed (a track may be minutes long)
        margin = int((0.5 + 4 * (60.0 / bpm if bpm else 0.24) / 4) * sr)
        cost = np.full(-(-L // step), np.inf)
        for a, b in ((0, top + margin), (n - margin, n + top + margin)):
            a, b = max(0, a // step * step), min(L, b)
            part = cut_cost(x[a:b], sr, bpm=bpm)
            cost[a // step : a // step + len(part)] = part[: len(cost) - a // step]
        seen = cost[np.isfinite(cost)]
        cost = (cost - seen.min()) / (np.percentile(seen, 95) - seen.min() + 1e-12)  # 0 quiet .. 1 onset
        head = np.where(cand == 0, 0.0, _at(cost, cand, step))  # the track's own start is no cut
        score = head + _at(cost, np.minimum(cand + n, L - 1), step) + 0.05 * cand / max(1, int(MAX_SKIP * sr))
        s = int(cand[np.argmin(score)])
        return LengthPlan(n=n, start=s, end=s + n)
    cost = cut_cost(x, sr, bpm=bpm)
    lo, hi = cost.min(), np.percentile(cost, 95)
    cost = (cost - lo) / (hi - lo + 1e-12)  # 0 = the quietest moment, 1 = a typical onset
    window = min(int(LOOP_SEARCH * sr), L // 3)
    if window < 4 * max(h, step) or L - h - window <= window:
        return _plan_loop(n, L, 0, L - h if h else L, h, xf)
    ins = np.arange(max(h, step), window, 2 * step)
    outs = np.arange(L - window, L - h, 2 * step)
    ci, co = _at(cost, ins, step), _at(cost, outs, step)
    # rhythmic context: the cost envelope over +-0.5 s (clipped to the track) around each point
    k = int(round(0.5 * sr / (4 * step)))
    offs = np.arange(-k, k + 1) * 4 * step
    ctx_i = _at(cost, np.clip(ins[:, None] + offs[None, :], 0, L - 1), step)
    ctx_o = _at(cost, np.clip(outs[:, None] + offs[None, :], 0, L - 1), step)
    mismatch = np.abs(ctx_o[:, None, :] - ctx_i[None, :, :]).mean(axis=2)  # (outs, ins)
    score = co[:, None] + ci[None, :] + 0.5 * mismatch
    o_k, i_k = np.unravel_index(np.argmin(score), score.shape)
    i, o = int(ins[i_k]), int(outs[o_k])
    # the start offset that puts the clip's end between beats
    top = min(int(MAX_SKIP * sr), o - i - 1, o - h - 1)
    cand = np.arange(0, max(0, top) + 1, step)
    ends = np.array([_plan_loop(n, L, int(c), o, i, xf).end for c in cand])
    head = np.where(cand == 0, 0.0, _at(cost, cand, step))
    score = head + _at(cost, ends, step) + 0.05 * cand / max(1, int(MAX_SKIP * sr))
    return _plan_loop(n, L, int(cand[np.argmin(score)]), o, i, xf)


def _plan_loop(n: int, L: int, start: int, loop_out: int, loop_in: int, xf: int) -> LengthPlan:
    if start + n <= loop_out:  # no seam needed after all
        return LengthPlan(n=n, start=start, end=start + n)
    period = loop_out - loop_in
    rest = (n - (loop_out - start)) % period
    return LengthPlan(n=n, start=start, end=loop_in + rest, loop_in=loop_in, loop_out=loop_out, crossfade=xf)


def loop_to_length(
    audio: np.ndarray, n: int, sr: int, crossfade: float = 0.05, *, bpm: float | None = None
) -> np.ndarray:
    """Fill exactly ``n`` samples from ``audio``: trimmed, or looped with an equal-power crossfade
    at each seam, cutting between beats (:func:`plan_length`). Returns float64 ``(n, 2)``.
    """
    x = to_stereo(audio)
    if x.shape[0] == 0:
        raise PostError("the music track is empty")
    plan = plan_length(x, n, sr, crossfade=crossfade, bpm=bpm)
    return render_plan(x, plan)


def render_plan(audio: np.ndarray, plan: LengthPlan) -> np.ndarray:
    """The ``(n, 2)`` samples a :class:`LengthPlan` describes."""
    x = to_stereo(audio)
    if plan.loop_in is None:
        return x[plan.start : plan.start + plan.n].copy()
    i, o, xf = plan.loop_in, plan.loop_out, plan.crossfade
    h = xf // 2
    out = np.empty((plan.n, 2))
    first = min(plan.n, o - plan.start)
    out[:first] = x[plan.start : plan.start + first]
    pos = first
    while pos < plan.n:
        k = min(plan.n - pos, o - i)
        out[pos : pos + k] = x[i : i + k]
        pos += k
    if xf:
        theta = np.linspace(0.0, np.pi / 2, xf)[:, None]
        tail = x[o - h : o + h]  # the track running on past the loop-out point
        head = x[i - h : i + h]  # ... and leading into the loop-in point
        for q in plan.seams:
            a, b = max(0, q - h), min(plan.n, q + h)
            if b <= a:
                continue
            sl = slice(a - (q - h), b - (q - h))
            out[a:b] = tail[sl] * np.cos(theta[sl]) + head[sl] * np.sin(theta[sl])
    return out


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

    audio = to_stereo(audio)
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


def normalise(audio: np.ndarray, sr: int, *, loudness: float = -14.0, true_peak: float = -1.0) -> np.ndarray:
    """Gain to ``loudness`` LUFS and look-ahead true-peak limiting to ``true_peak`` dBTP (aiming 0.5 dB
    lower, for the AAC encoder's overshoot), repeated until the loudness is within 0.2 LU.

    Raises :class:`~brandstudio.errors.PostError` for silence. Returns float32 ``(n, 2)``.
    """
    y = to_stereo(audio)
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


def fit_music(
    audio: np.ndarray,
    sr: int,
    duration: float,
    *,
    loudness: float = -14.0,
    true_peak: float = -1.0,
    fade_in: float = 0.3,
    fade_out: float = 1.0,
    bpm: float | None = None,
) -> np.ndarray:
    """Fit a music track to a clip: exact length, fades, target loudness, true-peak ceiling.

    Args:
        audio: ``(n, 2)`` or mono float samples at ``sr``.
        duration: the clip length in seconds; the result has ``round(duration * sr)`` samples.
        loudness: integrated loudness target, LUFS.
        true_peak: true-peak ceiling, dBTP (the limiter aims 0.5 dB lower).
        fade_in / fade_out: seconds (raised-cosine curves; each at most half the clip).
        bpm: the track's tempo if known; it sets how wide a "between beats" gap is when
            choosing the cut points (:func:`cut_cost`).

    Returns float32 ``(round(duration * sr), 2)``. Raises
    :class:`~brandstudio.errors.PostError` for a silent track.
    """
    if not duration > 0:
        raise ValueError(f"`duration` must be positive, got {duration}")
    n = round(duration * sr)
    # 1. length: trim or loop, cutting between beats, crossfading the seams
    y = loop_to_length(audio, n, sr, bpm=bpm)
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
    return normalise(y, sr, loudness=loudness, true_peak=true_peak)


ASSET_CHECKS.register("audio", check_audio)
