"""A clip's soundtrack: the music bed chosen and fitted, with a voice-over ducking it.

The audio stage's front door (:func:`soundtrack`, :func:`check`). The track is chosen by
:func:`~brandstudio.audio.tracks.select_track` (by seed, by rotation, or by mood) and fitted by
:func:`~brandstudio.audio.music.fit_music` (cut between beats, faded, at the profile's loudness
under its true-peak ceiling); a voice-over is mixed over it with the music ducked
(:func:`~brandstudio.audio.voiceover.mix_voiceover`). Without ``[audio]`` the voice-over alone is
the soundtrack, at -14 LUFS / -1 dBTP.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AssetError, RequestError
from ..files import check_user_file
from ..profile import BrandProfile
from .music import MIN_LOUDNESS_SECONDS, fit_music, integrated_loudness, load_audio, music_seconds, normalise
from .tracks import check_mood, select_track
from .voiceover import mix_voiceover, voice_activity

__all__ = ["DEFAULT_SAMPLE_RATE", "Soundtrack", "check", "sample_rate_of", "soundtrack"]

#: the sample rate of a soundtrack when the profile has no ``[audio]`` (a voice-over alone)
DEFAULT_SAMPLE_RATE = 48000
#: how far past the clip's end a voice-over is decoded (to find speech that would be cut off);
#: a longer file is refused rather than decoded whole
VOICEOVER_TAIL = 30.0


@dataclass(frozen=True)
class Soundtrack:
    """The mixed soundtrack (``(n, 2)`` float32, or None for a silent clip), its sample rate,
    what went into it (``RenderResult.music``) and warnings for the render's result."""

    audio: np.ndarray | None
    sample_rate: int
    info: dict[str, Any] | None = None
    warnings: tuple[str, ...] = field(default=())


def sample_rate_of(profile: BrandProfile) -> int:
    """The profile's ``[audio] sample_rate``, else :data:`DEFAULT_SAMPLE_RATE`."""
    return profile.spec.audio.sample_rate if profile.spec.audio else DEFAULT_SAMPLE_RATE


def check(brief, profile: BrandProfile) -> None:
    """Before any work: the music mood exists in the profile, and the voice-over is a readable
    recording with speech that ends within the clip."""
    audio = profile.spec.audio
    if brief.music_mood is not None or (audio and audio.select == "mood"):
        check_mood(audio, brief.music_mood, profile_id=profile.id)
    if brief.voiceover is not None:
        _voiceover(brief.voiceover, brief.duration, profile)


def soundtrack(brief, profile: BrandProfile, *, duration: float, state_dir: Path) -> Soundtrack:
    """The soundtrack of a clip of ``duration`` seconds (the delivered length) for ``brief``.

    ``state_dir`` keeps the music rotation's counters (``select = "rotate"``).
    """
    audio = profile.spec.audio
    if audio is None and brief.voiceover is None:
        return Soundtrack(None, DEFAULT_SAMPLE_RATE)
    sr = sample_rate_of(profile)
    info: dict[str, Any] = {}
    bed = None
    if audio is not None:
        choice = select_track(
            audio, seed=brief.seed, mood=brief.music_mood, state_dir=state_dir, profile_id=profile.id
        )
        info.update(choice.as_dict())
        # only as much as the fit can use: a track of hours (or one that says so) costs what a short one does
        need = music_seconds(duration, choice.track.bpm)
        track = load_audio(profile.path(f"audio.tracks[{choice.index}]"), sr, seconds=need)
        bed = fit_music(
            track, sr, duration, loudness=audio.loudness, true_peak=audio.true_peak,
            fade_in=audio.fade_in, fade_out=audio.fade_out, bpm=choice.track.bpm,
        )  # fmt: skip
    else:
        check_mood(None, brief.music_mood, profile_id=profile.id)  # a mood without [audio]: an error
    mixed = bed
    if brief.voiceover is not None:
        voice = _voiceover(brief.voiceover, brief.duration, profile)[: round(duration * sr)]
        info["voiceover"] = str(brief.voiceover)
        if bed is None:
            mixed = normalise(voice, sr, loudness=-14.0, true_peak=-1.0)
        else:
            mixed = mix_voiceover(
                bed, voice, sr, duck_db=audio.duck_db, attack=audio.duck_attack, release=audio.duck_release,
                loudness=audio.loudness, true_peak=audio.true_peak,
            ).audio  # fmt: skip
            info["duck_db"] = audio.duck_db
    return Soundtrack(mixed, sr, info, tuple(_loudness_warning(mixed, profile)))


def _voiceover(path: Path, duration: float, profile: BrandProfile) -> np.ndarray:
    """Decode a voice-over at the profile's sample rate; speech past the clip's end is an error,
    trailing silence is dropped later."""
    sr = sample_rate_of(profile)
    path = Path(path)
    bad = dict(profile=profile.id, field="voiceover", value=str(path))
    # a folder, FIFO, symlink loop or missing file: said as such, never opened (a FIFO would block)
    check_user_file(path, error=RequestError, what="the voice-over", profile=profile.id, field="voiceover",
                    missing_fix="pass the path of an audio file (WAV, FLAC, MP3, M4A, ...)")  # fmt: skip
    try:
        limit = float(duration) + VOICEOVER_TAIL
        voice = _decoded(str(path.resolve()), path.stat().st_mtime_ns, path.stat().st_size, sr, limit)
    except AssetError as exc:
        raise RequestError(f"could not read the voice-over: {exc.message}", **bad,
                           fix="export the voice-over again as WAV, FLAC, MP3 or M4A") from None  # fmt: skip
    if voice.shape[0] >= round(limit * sr) - 1:  # it goes on past what was decoded
        raise RequestError(
            f"the voice-over {path.name} runs more than {VOICEOVER_TAIL:g} s past the end of the "
            f"{duration:g} s clip", **bad,
            fix=f"trim the voice-over to the clip (at most {duration + VOICEOVER_TAIL:g} s), or ask for a longer clip",
        )  # fmt: skip
    active = np.flatnonzero(voice_activity(voice, sr, hold=0.0))
    if active.size == 0:
        raise RequestError(f"the voice-over {path.name} is silent", **bad, fix="pass a recording with speech")
    speech_end = (active[-1] + 1) / sr
    if speech_end > duration + 0.05:
        raise RequestError(
            f"the voice-over speaks for {speech_end:.2f} s, longer than the {duration:g} s clip", **bad,
            fix=f"ask for a longer clip (duration={np.ceil(speech_end * 4) / 4:g}) or trim the voice-over",
        )  # fmt: skip
    return voice


def _loudness_warning(audio: np.ndarray | None, profile: BrandProfile) -> list[str]:
    """A warning when the soundtrack misses the profile's loudness target by more than the QC
    tolerance (a true-peak ceiling too low for the target leaves the limiter no room)."""
    a, tol = profile.spec.audio, profile.spec.qc.loudness_tolerance
    sr, target = (a.sample_rate, a.loudness) if a else (DEFAULT_SAMPLE_RATE, -14.0)
    if audio is None or len(audio) <= MIN_LOUDNESS_SECONDS * sr:
        return []
    got = integrated_loudness(audio, sr)
    if abs(got - target) <= tol:
        return []
    ceiling = a.true_peak if a else -1.0
    return [
        f"the soundtrack measures {got:.1f} LUFS, not the profile's {target:g} LUFS "
        f"(true-peak ceiling {ceiling:g} dBTP): raise audio.true_peak or lower audio.loudness"
    ]


@functools.lru_cache(maxsize=2)
def _decoded(path: str, mtime_ns: int, size: int, sample_rate: int, seconds: float) -> np.ndarray:
    """A voice-over decoded once per render (its first ``seconds``): the check before any work and
    the mix read the same file (a changed file, by mtime and size, is decoded again). Read-only,
    as it is shared."""
    voice = load_audio(path, sample_rate, seconds=seconds)
    voice.setflags(write=False)
    return voice
