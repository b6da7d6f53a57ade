"""The encode stage's front door: a planned post chain streamed into the delivered MP4.

:func:`write` runs the post effects in a producer thread while ffmpeg encodes the previous
chunks (:func:`brandstudio.post.stream.run_stream`), with the observers (the QC sampler) seeing
every chunk first, then writes the ``.srt``/``.vtt`` sidecars; :func:`clip_metadata` is what
the MP4's tags say about the clip; :func:`check` runs before any work.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EncodeError, RequestError
from ..files import sha256_file
from ..post import (
    Cue,
    PostChain,
    clip_label,
    delivery_size,
    label_plan,
    machine_marks,
    produce_id,
    run_stream,
    write_srt,
    write_vtt,
)
from ..profile import BrandProfile
from ..progress import ProgressCallback, stage_reporter
from .mp4 import Mp4Writer
from .partials import remove_partials
from .paths import check_output

__all__ = ["check", "clip_metadata", "default_output", "sidecars", "write"]


def check(brief, profile: BrandProfile) -> None:
    """Before any work: the clip and its sidecars can be written at ``brief.output`` (no null
    byte, no file where a folder goes, a writable folder, a name the file system can hold, no
    folder where a file goes) and not inside a brand profile directory; see
    :func:`~brandstudio.encode.paths.check_output`. A request without an output path is checked
    when its default path is known (:func:`write`)."""
    if brief.output is not None:
        check_output(Path(brief.output), profile)


def sidecars(out: Path, with_captions: bool) -> tuple[Path, ...]:
    """The subtitle files written beside ``out`` (none for a clip without captions)."""
    return (out.with_suffix(".srt"), out.with_suffix(".vtt")) if with_captions else ()


def clip_metadata(profile: BrandProfile, brief, *, model_id: str, music: dict | None) -> dict[str, str]:
    """The MP4's tags: the brand as title, brandstudio's JSON record in ``comment`` (AI-generated,
    the label, model, seed, profile and its fingerprint, the music, the region's machine-readable
    marks: :mod:`brandstudio.post.marks`), the prompt as ``description``, and the region's extra
    tags (cn: GB 45438's ``AIGC``)."""
    size = delivery_size(brief.aspect, brief.resolution)
    content_id = produce_id(profile.id, profile.fingerprint, brief.prompt, brief.seed, brief.aspect, *size, brief.duration)
    marks, tags = machine_marks(profile.spec, label_plan(profile.spec), content_id=content_id)
    record = {
        "ai_generated": True,
        "label": clip_label(profile),
        "model": model_id,
        "seed": brief.seed,
        "profile": profile.id,
        "profile_fingerprint": profile.fingerprint,
        **({"music": music} if music else {}),
        **marks,  # digital source type, region, content id
    }
    return {
        "title": f"{profile.spec.brand.name}",
        "comment": json.dumps(record, ensure_ascii=False),
        "description": brief.prompt,
        **tags,
    }


def default_output(output_dir: Path, profile: BrandProfile, brief, music: dict | None = None) -> Path:
    """Where a clip goes when the request names no path:
    ``<output_dir>/<profile>/<template>-<aspect>-s<seed>-<digest>.mp4``, the digest being of
    everything that makes another clip (so the same request lands on the same name)."""
    req = brief.request
    parts = [profile.fingerprint, req.template, dict(req.variables), brief.aspect, brief.seed, brief.duration,
             brief.resolution]  # fmt: skip
    if req.music_mood or req.voiceover or (music or {}).get("select") == "rotate":
        # another bed or voice is another clip (names of renders without them stay as they were)
        vo = sha256_file(req.voiceover) if req.voiceover else None
        parts.append({"mood": req.music_mood, "voiceover": vo, "track": (music or {}).get("track")})
    if req.fps or req.slowmo != 1 or req.interpolation:
        # another rate, pace or in-between method is another clip (default renders keep their names)
        parts.append({"fps": brief.fps, "slowmo": brief.slowmo, "interpolation": brief.interpolation})
    key = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return Path(output_dir) / profile.id / f"{req.template}-{brief.aspect.replace(':', 'x')}-s{brief.seed}-{digest}.mp4"


def write(
    out: Path,
    chain: PostChain,
    source: np.ndarray,
    *,
    fps: float,
    size: tuple[int, int],
    profile: BrandProfile,
    audio: np.ndarray | None,
    sample_rate: int,
    metadata: dict[str, str],
    cues: Sequence[tuple[float, float, str]] = (),
    target: Path | None = None,
    observers: Sequence[Callable[[int, np.ndarray], Any]] = (),
    on_progress: ProgressCallback | None = None,
) -> dict[str, float]:
    """Stream ``source`` through ``chain`` into the MP4 at ``out`` (at ``target`` when given: the
    staging file of a clip to be signed), then write the subtitle sidecars.

    Returns the timings: ``post`` (seconds making frames), ``encode`` (seconds waiting for
    ffmpeg: blocked pipe writes and finishing the file) and ``post+encode`` (wall time; the two
    overlap). Progress: ``stage="post"`` when it starts, then ``stage="encode"`` once per chunk
    encoded, as frames done of the total.
    """
    try:  # the default path is first known here; an explicit one was checked before any work
        check_output(out, profile)
    except RequestError as exc:
        raise EncodeError(exc.message, profile=exc.profile, file=str(out), field="output", fix=exc.fix) from None
    report = stage_reporter(on_progress, "encode")
    stage_reporter(on_progress, "post")(0, 0)  # the effects start making frames,
    report(0, 0)  # and the encoder starts taking them
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_partials(out.parent)  # what killed runs left here (never a live run's: see .partials)
    t0 = time.perf_counter()
    n_frames = chain.n_frames(len(source))
    width, height = size
    spec = profile.spec
    progress = [lambda start, frames: report(start + len(frames), n_frames)] if on_progress else []
    with Mp4Writer(
        target or out, width, height, fps, n_frames=n_frames, audio=audio, sample_rate=sample_rate,
        crf=spec.output.crf, audio_bitrate=spec.output.audio_bitrate, metadata=metadata,
        max_bitrate=spec.output.max_bitrate, codec=spec.output.codec,
    ) as mp4:  # fmt: skip
        stats = run_stream(chain, source, mp4, observers=[*observers, *progress])
    timings = {
        "post": round(stats.post_seconds, 4),
        "encode": round(mp4.wait_seconds, 4),
        "post+encode": round(time.perf_counter() - t0, 4),
    }
    if cues:
        try:
            write_srt([Cue(*c) for c in cues], out.with_suffix(".srt"))
            write_vtt([Cue(*c) for c in cues], out.with_suffix(".vtt"))
        except BaseException:
            (target or out).unlink(missing_ok=True)
            out.with_suffix(".srt").unlink(missing_ok=True)
            raise
    return timings
