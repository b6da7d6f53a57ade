"""Reading media files: the bundled ffmpeg binary, and what a clip or audio file holds.

:func:`probe` describes a file (codecs, size, frame rate, the video stream's own frame count
and length, audio, tags) with PyAV, falling back to parsing ``ffmpeg -i``;
:func:`display_rotation` reads the display matrix that moviepy misses. Writing is
:mod:`brandstudio.encode`'s; this module only reads, so every stage may use it.

Example:
    >>> import numpy as np, tempfile, os
    >>> from brandstudio.encode import write_mp4
    >>> out = write_mp4(np.zeros((8, 32, 48, 3), np.uint8), 8, os.path.join(tempfile.mkdtemp(), "a.mp4"))
    >>> info = probe(out)
    >>> info["video_codec"], info["width"], info["height"], info["has_audio"]
    ('h264', 48, 32, False)
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import imageio_ffmpeg

from .errors import EncodeError

__all__ = ["display_rotation", "ffmpeg_exe", "ffmpeg_info", "probe"]


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (a core dependency)."""
    return imageio_ffmpeg.get_ffmpeg_exe()


def probe(path: str | Path) -> dict:
    """Describe a media file: codecs, size, fps, duration, frame count, audio, tags.

    Uses PyAV when it is installed, else parses ``ffmpeg -i``. Keys: ``video_codec``,
    ``pix_fmt``, ``width``, ``height``, ``fps``, ``frames`` and ``video_duration`` (the video
    stream's own frame count and seconds, ``None`` if unknown), ``duration`` (the file's seconds), ``has_audio``, ``audio_codec``, ``sample_rate``, ``metadata``.
    """
    path = Path(path)
    if not path.is_file():
        raise EncodeError(f"no such file: {path}", file=str(path))
    try:
        import av
    except ImportError:
        return _probe_with_ffmpeg(path)
    try:
        with av.open(str(path)) as container:
            v = container.streams.video[0] if container.streams.video else None
            a = container.streams.audio[0] if container.streams.audio else None
            duration = container.duration / 1_000_000 if container.duration else None
            return {
                "video_codec": v.codec_context.name if v else None,
                "pix_fmt": v.codec_context.pix_fmt if v else None,
                "width": v.codec_context.width if v else None,
                "height": v.codec_context.height if v else None,
                "fps": float(v.average_rate) if v and v.average_rate else None,
                "frames": (v.frames or None) if v else None,
                "video_duration": float(v.duration * v.time_base) if v and v.duration else None,
                "duration": duration,
                "has_audio": a is not None,
                "audio_codec": a.codec_context.name if a else None,
                "sample_rate": a.codec_context.sample_rate if a else None,
                "metadata": dict(container.metadata),
            }
    except Exception as exc:  # noqa: BLE001 - PyAV/ffmpeg errors of any kind mean unreadable
        raise EncodeError(
            f"could not read {path.name}: {type(exc).__name__}: {exc}", file=str(path)
        ) from None


def display_rotation(path: str | Path) -> int:
    """The rotation in degrees (0, 90, 180 or 270, as ``ffmpeg -i`` reports it) a player
    applies to ``path``'s video: its display matrix, or the older ``rotate`` tag; 0 if none.

    Phone footage is often stored landscape with a 90-degree display matrix. ffmpeg rotates
    such frames when it decodes them, so a reader must expect the rotated size.
    """
    out = ffmpeg_info(path)
    video = out.split("Video:", 1)[1] if "Video:" in out else ""
    m = re.search(r"rotation of (-?[\d.]+) degrees", video) or re.search(
        r"^\s*rotate\s*:\s*(-?[\d.]+)", video, re.M
    )
    return int(round(float(m[1]))) % 360 if m else 0


def ffmpeg_info(path: str | Path) -> str:
    """What ``ffmpeg -i path`` says about a file (its stderr: streams, duration, tags)."""
    return subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, text=True, check=False
    ).stderr


def _probe_with_ffmpeg(path: Path) -> dict:
    out = ffmpeg_info(path)
    info: dict = {
        "video_codec": None, "pix_fmt": None, "width": None, "height": None, "fps": None, "frames": None,
        "video_duration": None, "duration": None, "has_audio": False, "audio_codec": None, "sample_rate": None, "metadata": {},
    }  # fmt: skip
    m = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", out)
    if m:
        info["duration"] = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    m = re.search(r"Stream #\S+: Video: (\w+)[^,]*, (\w+)[^,]*(?:\([^)]*\))?, (\d+)x(\d+)", out)
    if m:
        info.update(video_codec=m[1], pix_fmt=m[2], width=int(m[3]), height=int(m[4]))
    m = re.search(r"Video:.*?, ([\d.]+) fps", out)
    if m:
        info["fps"] = float(m[1])
    m = re.search(r"Stream #\S+: Audio: (\w+)[^,]*, (\d+) Hz", out)
    if m:
        info.update(has_audio=True, audio_codec=m[1], sample_rate=int(m[2]))
    head = out.split("Duration:")[0]
    for key, value in re.findall(r"^\s{4}(\w+)\s*: (.*)$", head, flags=re.MULTILINE):
        info["metadata"][key] = value
    if info["video_codec"] is None and not info["has_audio"]:
        raise EncodeError(f"could not read {path.name}: not a media file", file=str(path))
    return info
