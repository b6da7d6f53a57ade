"""Which music track a render gets: by mood, then by seed or in rotation.

A profile's ``[audio] tracks`` are plain paths or tables with a ``mood`` (and ``bpm``)::

    [audio]
    tracks = [
        { file = "music/morning-roast.m4a", mood = "calm", bpm = 84 },
        { file = "music/bright-brew.m4a", mood = "upbeat", bpm = 124 },
    ]
    select = "rotate"        # "seed" (default) | "rotate" | "mood"
    default_mood = "calm"

:func:`select_track` narrows the tracks to the requested mood (the render's ``music_mood``,
else its template's ``music_mood``, else ``default_mood``; every track when none applies) and
picks one of them:

* ``"seed"``: ``candidates[seed % len(candidates)]``: the same request always gets the same
  track, and different seeds spread over the tracks.
* ``"rotate"``: consecutive renders cycle through the candidates. A counter per profile and
  mood is kept in ``<state_dir>/<profile id>.json`` (the studio uses
  ``<output_dir>/.brandstudio/music-rotation/``, so everyone rendering into one output folder
  shares one rotation), read and advanced under a file lock and written atomically, so
  parallel renders never get the same turn. Rotation is on purpose *not* a function of the
  request: the same brief rendered for ten markets should not get the same bed ten times
  ("seed" covers "same request, same clip"). So that a rotated clip can still be traced and
  re-made, the track it got is recorded in its result (``RenderResult.music``) and in the
  MP4's ``comment`` tag.
* ``"mood"``: as ``"seed"``, but a render that names no mood (and no ``default_mood``) is an
  error: for brands that want every clip's music chosen on purpose.

An unknown mood is a :class:`~brandstudio.errors.RequestError` listing the profile's moods.

Example:
    >>> from brandstudio.profile.schema import AudioSection
    >>> a = AudioSection(tracks=["a.m4a", {"file": "b.m4a", "mood": "calm"}, {"file": "c.m4a", "mood": "calm"}])
    >>> [select_track(a, seed=s, mood="calm").index for s in (0, 1, 2)]
    [1, 2, 1]
    >>> select_track(a, seed=5).index
    2
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> rot = a.model_copy(update={"select": "rotate"})
    >>> [select_track(rot, seed=0, state_dir=d, profile_id="p").index for _ in range(4)]
    [0, 1, 2, 0]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from brandstudio.errors import RequestError
from brandstudio.files import write_text_atomic

__all__ = ["TrackChoice", "check_mood", "rotation_state_path", "select_track"]


@dataclass(frozen=True)
class TrackChoice:
    """The chosen track: its index in ``[audio] tracks``, the entry, the mood it was chosen for
    (or ``None``), how (``"seed"``, ``"rotate"``, ``"mood"``) and, for a rotation, the turn."""

    index: int
    track: object  # brandstudio.profile.schema.MusicTrack
    mood: str | None
    select: str
    turn: int | None = None

    def as_dict(self) -> dict:
        t = self.track
        return {
            "track": t.file,
            "index": self.index,
            "mood": self.mood,
            "bpm": t.bpm,
            "select": self.select,
            **({"turn": self.turn} if self.turn is not None else {}),
        }


def rotation_state_path(state_dir: str | Path, profile_id: str) -> Path:
    """Where the rotation counters of ``profile_id`` are kept."""
    return Path(state_dir) / f"{profile_id}.json"


def _next_turn(path: Path, key: str) -> int:
    """Read the counter ``key`` of ``path``, advance it, write it back: under a lock, atomically."""


    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=60):
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            counters = state.get("counters", {}) if isinstance(state, dict) else {}
        except (OSError, ValueError):
            counters = {}  # missing or damaged: the rotation starts again
        turn = counters.get(key, 0)
        turn = turn if isinstance(turn, int) and turn >= 0 else 0
        counters[key] = turn + 1
        write_text_atomic(path, json.dumps({"counters": counters}, indent=2, sort_keys=True) + "\n")
    return turn


def check_mood(audio, mood: str | None, *, profile_id: str | None = None) -> None:
    """Raise the :class:`~brandstudio.errors.RequestError` :func:`select_track` would for ``mood``
    (unknown, or missing under ``select = "mood"``), without choosing or advancing a rotation:
    a render checks its request with it before generating anything."""
    if audio is not None:
        _candidates(audio, mood, profile_id)
    elif mood is not None:
        raise RequestError(
            f"this profile has no [audio] section, so no music mood ({mood!r}) can be chosen",
            profile=profile_id,
            file="brand.toml",
            field="audio",
            value=mood,
            fix="add [audio] tracks with moods to brand.toml, or leave out the mood",
        )


def _candidates(audio, mood: str | None, profile_id: str | None) -> tuple[list[int], str | None]:
    tracks = audio.track_list
    moods = audio.moods
    mood = mood if mood is not None else audio.default_mood
    if mood is not None:
        mood = mood.strip().lower()
        candidates = [i for i, t in enumerate(tracks) if t.mood == mood]
        if not candidates:
            raise RequestError(
                f"no music track has the mood {mood!r}"
                + (f"; this profile's moods are: {', '.join(moods)}" if moods else "; no track has a mood"),
                profile=profile_id,
                file="brand.toml",
                field="audio.tracks",
                value=mood,
                fix=f"ask for one of: {', '.join(moods)}"
                if moods
                else 'tag tracks in brand.toml: tracks = [{ file = "music/x.m4a", mood = "calm" }]',
            )
        return candidates, mood
    if audio.select == "mood":
        raise RequestError(
            'this profile chooses music by mood (audio.select = "mood"), and the render names none',
            profile=profile_id,
            file="brand.toml",
            field="audio.select",
            value="mood",
            fix=f"pass music_mood= (CLI --mood) with one of: {', '.join(moods) or '(none tagged)'}, "
            "set music_mood in the template, or set audio.default_mood",
        )
    return list(range(len(tracks))), None


def select_track(
    audio,
    *,
    seed: int,
    mood: str | None = None,
    state_dir: str | Path | None = None,
    profile_id: str | None = None,
) -> TrackChoice:
    """Choose a track of ``audio`` (an :class:`~brandstudio.profile.schema.AudioSection`).

    ``mood`` is the one asked for (``None``: ``audio.default_mood``). ``state_dir`` and
    ``profile_id`` are needed for ``select = "rotate"``. See the module docstring.
    """
    tracks = audio.track_list
    candidates, mood = _candidates(audio, mood, profile_id)
    if audio.select == "rotate":
        if state_dir is None or profile_id is None:
            raise ValueError("select = 'rotate' needs `state_dir` and `profile_id`")
        turn = _next_turn(rotation_state_path(state_dir, profile_id), mood or "*")
        i = candidates[turn % len(candidates)]
        return TrackChoice(i, tracks[i], mood, "rotate", turn)
    i = candidates[int(seed) % len(candidates)]
    return TrackChoice(i, tracks[i], mood, audio.select)
