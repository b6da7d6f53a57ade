"""Audio: the music bed (tracks chosen by seed, rotation or mood, fitted to the clip between
beats at the brand's loudness), voice-overs ducking the music, loudness and true-peak
measurement (BS.1770).

The front door is :func:`soundtrack` (with :func:`check`, run before any work).

Example:
    >>> import numpy as np
    >>> from brandstudio.audio import fit_music, integrated_loudness
    >>> t = np.arange(48000 * 4) / 48000
    >>> tone = np.stack([0.1 * np.sin(2 * np.pi * 440 * t)] * 2, axis=1).astype(np.float32)
    >>> bed = fit_music(tone, 48000, 3.0, loudness=-16.0, true_peak=-1.0)
    >>> bed.shape, round(integrated_loudness(bed, 48000))
    ((144000, 2), -16)
"""

from .music import fit_music, integrated_loudness, load_audio, normalise, true_peak_db
from .soundtrack import DEFAULT_SAMPLE_RATE, Soundtrack, check, sample_rate_of, soundtrack
from .tracks import check_mood, select_track
from .voiceover import mix_voiceover

__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "Soundtrack",
    "check",
    "check_mood",
    "fit_music",
    "integrated_loudness",
    "load_audio",
    "mix_voiceover",
    "normalise",
    "sample_rate_of",
    "select_track",
    "soundtrack",
    "true_peak_db",
]
