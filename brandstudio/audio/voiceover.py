"""Voice-over: mix a spoken track over the music bed, ducking the music while the voice speaks.

* :func:`voice_activity` finds where the voice is: the RMS of 20 ms frames (every 5 ms)
  above a threshold relative to the voice's own loudest frames (30 dB under them, and never
  below -55 dBFS), held open for 0.25 s so the music does not pump between words.
* :func:`duck_gain` turns that into the music's gain: ``-duck_db`` while the voice is active,
  reached ``attack`` seconds *before* the voice starts (the mix looks ahead: the music is
  already down at the first syllable) and recovering over ``release`` seconds after it,
  as a one-pole curve in dB (the way a broadcast ducker sounds).
* :func:`mix_voiceover` levels the voice to the loudness target (BS.1770 integrated, so pauses
  do not count), ducks the bed, adds the two, and then brings the whole mix to the target
  loudness under the true-peak ceiling (:func:`brandstudio.audio.music.normalise`).

Example:
    >>> import numpy as np
    >>> from brandstudio.audio.voiceover import mix_voiceover
    >>> sr = 48000; t = np.arange(4 * sr) / sr
    >>> music = np.stack([0.1 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1)
    >>> voice = np.where((t > 1.5) & (t < 2.5), 0.3 * np.sin(2 * np.pi * 900 * t), 0.0)
    >>> mix = mix_voiceover(music, voice, sr, duck_db=12, loudness=-14.0, true_peak=-1.0)
    >>> mix.audio.shape, round(float(mix.music_gain_db[int(2.0 * sr)]), 1), round(float(mix.music_gain_db[sr // 2]), 1)
    ((192000, 2), -12.0, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from brandstudio.audio.music import integrated_loudness, normalise, to_stereo
from brandstudio.errors import PostError

__all__ = ["VoiceMix", "duck_gain", "mix_voiceover", "voice_activity"]

_HOP = 0.005
_FRAME = 0.02


def _mono(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio, dtype=np.float64)
    return a.mean(axis=1) if a.ndim == 2 else a


def voice_activity(
    voice: np.ndarray, sr: int, *, relative_db: float = 30.0, floor_db: float = -55.0, hold: float = 0.25
) -> np.ndarray:
    """Per sample: ``True`` where the voice is speaking (see the module docstring).

    Example:
        >>> import numpy as np
        >>> sr = 16000; v = np.zeros(sr); v[4000:8000] = 0.2 * np.sin(np.arange(4000))
        >>> act = voice_activity(v, sr, hold=0.0)
        >>> bool(act[6000]), bool(act[12000])
        (True, False)
    """

    x = _mono(voice)
    n = x.shape[0]
    if n == 0:
        return np.zeros(0, bool)
    step, win = max(1, int(_HOP * sr)), max(2, int(_FRAME * sr))
    c = np.concatenate([[0.0], np.cumsum(np.pad(x**2, (win // 2, win // 2)))])
    centres = np.arange(0, n, step)
    rms = np.sqrt(np.maximum((c[centres + win] - c[centres]) / win, 0.0))
    db = 20 * np.log10(np.maximum(rms, 1e-10))
    if not np.isfinite(db).any() or db.max() <= -100:
        return np.zeros(n, bool)
    threshold = max(floor_db, float(np.percentile(db, 99)) - relative_db)
    active = db > threshold
    k = int(round(hold / _HOP))
    if k > 0:  # hold open for `hold` after each active frame: active[t] = any(raw[t - k .. t])
        padded = np.concatenate([np.zeros(k, bool), active])
        active = sliding_window_view(padded, k + 1).any(axis=1)
    return np.repeat(active, step)[:n] if step > 1 else active[:n]


def duck_gain(
    active: np.ndarray, sr: int, *, duck_db: float = 12.0, attack: float = 0.08, release: float = 0.4
) -> np.ndarray:
    """The music's gain in dB per sample (0 or down to ``-duck_db``) for a voice-activity mask.

    The gain starts falling ``attack`` s before each active stretch and is at ``-duck_db``
    (within 5 %) when it starts; after it, it recovers with a time constant of ``release / 3``.
    """

    active = np.asarray(active, bool)
    n = active.shape[0]
    if n == 0:
        return np.zeros(0)
    step = max(1, int(_HOP * sr))
    # a hop is active if any of its samples is
    hops = np.add.reduceat(active.astype(np.uint8), np.arange(0, n, step)) > 0 if step > 1 else active
    a = max(1, int(round(attack / _HOP)))
    # look ahead: the target is down while the voice is active now or within the next `attack`
    target = sliding_window_view(np.concatenate([hops, np.zeros(a, bool)]), a + 1).any(axis=1)
    goal = -float(duck_db) * target.astype(np.float64)
    k_att = 1 - np.exp(-_HOP / max(attack / 3, 1e-4))
    k_rel = 1 - np.exp(-_HOP / max(release / 3, 1e-4))
    g = np.empty_like(goal)
    cur = 0.0
    for i, want in enumerate(goal.tolist()):
        cur += (want - cur) * (k_att if want < cur else k_rel)
        g[i] = cur
    t_hops = np.arange(len(g)) * step
    return np.interp(np.arange(n), t_hops, g)


@dataclass(frozen=True, eq=False)
class VoiceMix:
    """The result of :func:`mix_voiceover`: the final ``audio`` ``(n, 2)`` float32, the music's gain
    curve ``music_gain_db`` (per sample, before the final normalisation) and the voice-activity mask."""

    audio: np.ndarray
    music_gain_db: np.ndarray
    active: np.ndarray


def mix_voiceover(
    music: np.ndarray,
    voice: np.ndarray,
    sr: int,
    *,
    duck_db: float = 12.0,
    attack: float = 0.08,
    release: float = 0.4,
    loudness: float = -14.0,
    true_peak: float = -1.0,
) -> VoiceMix:
    """Mix ``voice`` over ``music`` (both at ``sr``; the voice is padded or cut to the music's length).

    The voice is levelled to ``loudness`` LUFS, the music ducked by ``duck_db`` while the voice
    is active, and the sum normalised to ``loudness`` with the true peak under ``true_peak``.
    Raises :class:`~brandstudio.errors.PostError` if the voice is silent.
    """

    m = to_stereo(music)
    v = to_stereo(voice)
    n = m.shape[0]
    v = np.concatenate([v, np.zeros((max(0, n - v.shape[0]), 2))])[:n]
    active = voice_activity(v, sr)
    if not active.any():
        raise PostError(
            "the voice-over is silent over the clip",
            field="voiceover",
            fix="pass a voice-over file with speech",
        )
    measure = v if n >= int(0.5 * sr) else np.tile(v, (int(0.5 * sr) // max(1, n) + 1, 1))
    v_lufs = integrated_loudness(measure, sr)
    v = v * 10 ** ((loudness - v_lufs) / 20) if np.isfinite(v_lufs) else v
    gain_db = duck_gain(active, sr, duck_db=duck_db, attack=attack, release=release)
    mixed = m * 10 ** (gain_db / 20)[:, None] + v
    return VoiceMix(normalise(mixed, sr, loudness=loudness, true_peak=true_peak), gain_db, active)
