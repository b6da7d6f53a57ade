"""QC of a video file (made by brandstudio or not): ``brandstudio qc CLIP``.

:func:`check_file` reads the file with moviepy, streaming its frames into a
:class:`~brandstudio.qc.QCCollector`, decodes its soundtrack, and measures both like a render's
frames (:func:`brandstudio.qc.report`). A damaged file gets an error, not a report. The CLIP
prompt check (:mod:`~brandstudio.qc.style`) reads the prompt brandstudio recorded: the
``.json`` record beside the clip (each shot's prompt for a multi-shot clip), else the MP4's
``description`` tag; a clip made elsewhere has none, and that check is skipped.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from brandstudio.audio.music import load_audio
from brandstudio.errors import AssetError, BrandStudioError, EncodeError, QCError, missing_extra
from brandstudio.files import MAX_TOML_BYTES, check_user_file, read_user_text
from brandstudio.media import display_rotation, probe
from brandstudio.profile import BrandProfile

from .measure import measure, resolve_profile
from .results import QCReport
from .sampler import QCCollector

__all__ = ["check_file"]

_AGAIN = "export or download the clip again"
_DECODABLE = "pass a video file ffmpeg can decode (MP4, MOV, WebM, ...)"


def check_file(
    path: str | Path,
    profile: BrandProfile | str | Path,
    *,
    sample_rate: int = 48000,
    prompt: str | Sequence[str] | None = None,
) -> QCReport:
    """Run QC on any video file (generated here or not), read with moviepy.

    The frames stream through (downscaled as they arrive; a display rotation, as phone footage
    has, is applied); the soundtrack, if any, is decoded at ``sample_rate`` in its own channel
    layout (mono is measured as mono) for the loudness checks. Model, seed and the rendering
    profile's fingerprint are read from the MP4's ``comment`` tag when brandstudio wrote it.
    ``prompt`` (for the CLIP prompt check) defaults to the prompt brandstudio recorded: the
    clip's ``.json`` record, else its ``description`` tag (see the module docstring).

    Raises :class:`~brandstudio.errors.QCError` if the file is missing, empty, not a video
    (no video stream), or damaged (frames that do not decode, as in a truncated download):
    a damaged clip gets no report, since its checks would measure repeated frames.
    """
    started = time.perf_counter()
    path = Path(path)
    prof = resolve_profile(profile)
    # 1. a file that holds a video stream
    info = _probe_video(path)
    # 2. its frames, sampled as they decode
    sampled, fps = _sample_frames(path, info)
    # 3. its soundtrack, if any
    audio = _soundtrack(path, sample_rate, sampled.frames / fps) if info.get("has_audio") else None
    # 4. the report, with what brandstudio recorded in the file
    tags = _brandstudio_tags(info)
    if prompt is None:
        prompt = recorded_prompt(path, info, tags)
    return measure(sampled, prof, started=started, fps=fps, audio=audio,
                   sample_rate=sample_rate if audio is not None else None, clip=path, model=tags.get("model"),
                   seed=tags.get("seed"), timings=None, safety=None, prompt=prompt)  # fmt: skip


def _probe_video(path: Path) -> dict:
    """What :func:`~brandstudio.media.probe` says of ``path``, once it is known to hold video."""
    check_user_file(path, error=QCError, what="the clip", missing_fix="pass the path of an existing video file")
    if path.stat().st_size == 0:
        raise QCError(f"{path.name} is empty (0 bytes)", file=str(path), fix=_AGAIN)
    try:
        info = probe(path)
    except EncodeError:
        raise QCError(
            f"could not read {path.name} as a video: it is not a media file ffmpeg can read (or it is damaged)",
            file=str(path),
            fix=_DECODABLE,
        ) from None
    if not info.get("width"):
        raise QCError(
            f"{path.name} has no video stream" + (" (it holds only audio)" if info.get("has_audio") else ""),
            file=str(path),
            fix="pass a video file",
        )
    return info


def _sample_frames(path: Path, info: Mapping) -> tuple[QCCollector, float]:
    """The file's frames streamed into a collector, and its frame rate; a clip whose frames do
    not all decode is refused."""
    try:
        from moviepy import VideoFileClip  # moviepy: a heavy import, needed only to read a file
    except ImportError:  # pragma: no cover - a core dependency
        raise missing_extra("moviepy", "video") from None
    # moviepy 2.2 reads the older `rotate` tag but not ffmpeg 7+'s display matrix: tell it the
    # size ffmpeg's (rotated) frames come out at, or it squeezes them back into the stored size
    turned = display_rotation(path) in (90, 270)
    size = (info["height"], info["width"]) if turned else None
    try:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            clip = VideoFileClip(str(path), audio=False, target_resolution=size)
    except Exception as exc:  # noqa: BLE001 - moviepy/ffmpeg raise many types for unreadable files
        raise QCError(
            f"could not read {path.name} as a video: {_ffmpeg_reason(exc)}", file=str(path), fix=_DECODABLE
        ) from None
    try:
        fps = float(clip.fps)
        # moviepy takes the file's duration (the longer of video and audio) for the video's: stop at
        # the video stream's own end, so a soundtrack that runs on is not taken for lost frames
        expected = int(round((clip.duration or 0) * fps))
        own = info.get("frames") or round((info.get("video_duration") or 0) * fps)
        expected = min(expected, own) if own else expected
        sampled = QCCollector(expected)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for frame in clip.iter_frames(dtype="uint8"):
                sampled.add(frame[..., :3])
                if own and sampled.frames >= expected:
                    break  # before moviepy reads past the end
    except Exception as exc:  # noqa: BLE001
        raise QCError(
            f"could not decode {path.name}: {type(exc).__name__}: {str(exc).strip()[:300]}", file=str(path)
        ) from None
    finally:
        clip.close()
    # moviepy repeats the last good frame for each one that does not decode, with a warning
    lost = sum("last valid frame" in str(w.message) for w in caught)
    if lost:
        raise QCError(
            f"{path.name} is damaged or truncated: {lost} of its {max(expected, sampled.frames)} frames do not decode",
            file=str(path),
            fix=_AGAIN,
        )
    return sampled, fps


def _soundtrack(path: Path, sample_rate: int, video_seconds: float):
    """The file's soundtrack at ``sample_rate``, in its own channel layout (mono stays mono), as
    far as the video runs (and a second more): a soundtrack that claims hours is not decoded whole."""
    try:
        return load_audio(path, sample_rate, keep_mono=True, seconds=video_seconds + 1.0)
    except AssetError as exc:
        raise QCError(
            f"could not decode the soundtrack of {path.name}: {exc.message}", file=str(path), fix=_AGAIN
        ) from None


def _ffmpeg_reason(exc: Exception) -> str:
    """The useful last lines of a moviepy/ffmpeg error (without log prefixes), or the error itself."""
    lines = [re.sub(r"^\[[^\]]*\]\s*", "", ln).strip() for ln in str(exc).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("Error passing", "output:", "Error opening"))]
    return "; ".join(lines[-2:])[:300] or type(exc).__name__


def _brandstudio_tags(info: Mapping) -> dict:
    """The provenance JSON brandstudio writes into the MP4 ``comment`` tag ({} if absent), from
    what :func:`~brandstudio.media.probe` read."""
    comment = info.get("metadata", {}).get("comment", "")
    try:
        tags = json.loads(comment) if comment.startswith("{") else {}
    except ValueError:
        return {}
    return tags if isinstance(tags, dict) else {}


def recorded_prompt(path: Path, info: Mapping, tags: Mapping) -> str | list[str] | None:
    """The prompt brandstudio recorded for the clip at ``path``: from its ``.json`` record (a
    render's result, naming this file), each shot's prompt for a multi-shot clip, else the
    prompt; else the MP4's ``description`` tag when brandstudio's ``comment`` record (``tags``)
    is there too; else None."""
    record = _json_record(path)
    generation = record.get("generation")
    shots = generation.get("shots") if isinstance(generation, dict) else None
    prompts = [s.get("prompt") for s in shots if isinstance(s, dict)] if isinstance(shots, list) else []
    if prompts and len(prompts) == len(shots) and all(isinstance(p, str) for p in prompts):
        return prompts
    if isinstance(record.get("prompt"), str) and record["prompt"].strip():
        return record["prompt"]
    description = info.get("metadata", {}).get("description")
    if tags and isinstance(description, str) and description.strip():
        return description
    return None


def _json_record(path: Path) -> dict:
    """The render record beside the clip (``clip.json``, whose ``path`` names this file), or {}:
    a missing, unreadable or foreign file is no record."""
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        text = read_user_text(side, limit=MAX_TOML_BYTES, error=QCError, what="the clip's record")
        record = json.loads(text)
    except (BrandStudioError, ValueError):
        return {}
    if not isinstance(record, dict) or not isinstance(record.get("path"), str):
        return {}
    return record if Path(record["path"]).name == path.name else {}
