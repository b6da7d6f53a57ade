"""Media probes used by the tests' assertions (importable: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PROFILES = REPO / "brand_profiles"


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ebur128(path: Path) -> dict:
    """Integrated loudness (LUFS) and true peak (dBTP) measured by ffmpeg's ebur128 filter."""
    proc = subprocess.run(
        [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostats",
            "-i",
            str(path),
            "-filter_complex",
            "ebur128=peak=true",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        check=True,
    )
    log = proc.stderr.decode("utf-8", errors="replace")
    summary = log[log.rfind("Summary:") :]
    integrated = float(re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary).group(1))
    peak = float(re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1))
    return {"integrated": integrated, "true_peak": peak}


def probe(path: Path) -> dict:
    """What ffprobe would report, read with PyAV (libavformat): codecs, size, fps, frames, metadata."""
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        info = {
            "video_codec": v.codec_context.name,
            "pix_fmt": v.codec_context.pix_fmt,
            "width": v.codec_context.width,
            "height": v.codec_context.height,
            "fps": float(v.average_rate),
            "frames": v.frames,
            "audio_codec": a.codec_context.name if a else None,
            "sample_rate": a.codec_context.sample_rate if a else None,
            "duration": float(c.duration / 1e6) if c.duration else None,
            "metadata": dict(c.metadata),
        }
    return info


def decode_frames(path: Path) -> np.ndarray:
    """All video frames as uint8 (T, H, W, 3) RGB."""
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def moov_before_mdat(path: Path) -> bool:
    """True when the MP4 is 'faststart' (the moov atom precedes mdat)."""
    data = path.read_bytes()
    return 0 <= data.find(b"moov") < data.find(b"mdat")


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
