"""Writing the delivered MP4 (H.264 + AAC), atomically; sidecar text files; probing.

:func:`write_mp4` pipes raw RGB frames straight into the ffmpeg binary that ships with
``imageio-ffmpeg`` (the same binary moviepy uses) rather than going through
``moviepy.ImageSequenceClip.write_videofile``, because moviepy 2.2 cannot produce the file
we need:

* it appends its own ``-pix_fmt yuva420p`` after any ``ffmpeg_params`` for libx264, so our
  ``-pix_fmt yuv420p`` is overridden and the result depends on ffmpeg's fallback;
* it writes frame rates as ``"%.02f"`` (23.976 becomes 23.98);
* it converts audio to int16 and encodes it to a separate AAC file first, so the float
  music bed (already limited to a true-peak ceiling) is quantised twice.

Piping gives one ffmpeg process with an explicit, reviewable command line: BT.709 colour
conversion and tags (so brand colours decode as they were graded), ``yuv420p``,
``+faststart``, float audio encoded once to AAC, and ``-metadata`` tags.

Every file is written to a hidden temp file in the destination directory (``.NAME.*.part.mp4``)
and moved into place with ``os.replace``; on any failure the temp files are removed and
:class:`~brandstudio.errors.EncodeError` is raised, so ``path`` is either the complete
new file or untouched.

Example:
    >>> import numpy as np, tempfile, os
    >>> from brandstudio.encode import write_mp4, probe
    >>> out = write_mp4(np.zeros((8, 32, 48, 3), np.uint8), 8, os.path.join(tempfile.mkdtemp(), "a.mp4"))
    >>> info = probe(out)
    >>> info["video_codec"], info["width"], info["height"], info["has_audio"]
    ('h264', 48, 32, False)
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from brandstudio.errors import EncodeError
from brandstudio.frames import check_frames

__all__ = ["ffmpeg_exe", "probe", "write_mp4", "write_text_atomic"]


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg."""
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - a core dependency
        from brandstudio.errors import MissingDependency

        raise MissingDependency(
            "encoding needs the package `imageio-ffmpeg` (it ships the ffmpeg binary), which is not installed",
            fix="pip install imageio-ffmpeg (a core dependency: reinstalling brandstudio brings it back)",
        ) from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def _temp_path(path: Path, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    # mkstemp makes 0600; a delivered file gets the usual permissions (0666 less the umask)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (temp file in the same directory + ``os.replace``).

    Example:
        >>> import tempfile, os
        >>> p = write_text_atomic(os.path.join(tempfile.mkdtemp(), "a.srt"), "hi\\n")
        >>> p.read_text()
        'hi\\n'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path, ".part" + path.suffix)
    try:
        with open(tmp, "w", encoding=encoding, newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _fps_arg(fps: float) -> str:
    frac = Fraction(fps).limit_denominator(1001)
    return f"{frac.numerator}/{frac.denominator}"


def write_mp4(
    frames: np.ndarray,
    fps: float,
    path: str | Path,
    *,
    audio: np.ndarray | None = None,
    sample_rate: int = 48000,
    crf: int = 18,
    audio_bitrate: str = "192k",
    metadata: dict[str, str] | None = None,
    preset: str = "medium",
) -> Path:
    """Encode ``frames`` (``(T, H, W, 3)`` uint8 RGB) as H.264/yuv420p MP4 at ``path``.

    Args:
        fps: frames per second.
        audio: optional float ``(n, 2)`` (or ``(n,)``/``(n, 1)`` mono) samples in [-1, 1]
            at ``sample_rate``; padded with silence or trimmed to the video's length, and
            encoded to AAC at ``audio_bitrate``.
        crf: x264 constant rate factor (0 lossless .. 51 worst; 18 is visually lossless).
        metadata: container tags, e.g. ``{"title": ..., "comment": ...}``.
        preset: x264 speed/size preset.

    Returns the final path. Raises :class:`~brandstudio.errors.EncodeError` (and leaves no
    file at ``path``) if the frames cannot be encoded or ffmpeg fails.
    """
    path = Path(path)
    try:
        frames = check_frames(frames)
    except ValueError as exc:
        raise EncodeError(f"cannot encode {path.name}: {exc}", file=str(path)) from None
    T, H, W, _ = frames.shape
    if H % 2 or W % 2:
        raise EncodeError(
            f"H.264 with yuv420p needs even frame sizes, got {W}x{H}",
            file=str(path),
            value=(W, H),
            fix="reframe/upscale to an even size first (brandstudio.post.reframe.delivery_size)",
        )
    if not fps > 0:
        raise EncodeError(f"`fps` must be positive, got {fps}", file=str(path), value=fps)
    if not re.fullmatch(r"\d+k", audio_bitrate):
        raise EncodeError(
            f"`audio_bitrate` must look like '192k', got {audio_bitrate!r}", value=audio_bitrate
        )
    if not 0 <= int(crf) <= 51:
        raise EncodeError(f"`crf` must be in 0..51, got {crf}", value=crf)

    if audio is not None:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[:, None]
        if audio.ndim != 2 or audio.shape[1] not in (1, 2):
            raise EncodeError(f"`audio` must have shape (n, 2) or (n,), got {audio.shape}", file=str(path))
        if audio.shape[1] == 1:
            audio = np.repeat(audio, 2, axis=1)
        if not np.isfinite(audio).all():
            raise EncodeError("`audio` holds NaN or inf samples", file=str(path))
        n = round(T / fps * sample_rate)
        if audio.shape[0] < n:
            audio = np.concatenate([audio, np.zeros((n - audio.shape[0], 2), np.float32)])
        audio = np.ascontiguousarray(np.clip(audio[:n], -1.0, 1.0))

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_video = _temp_path(path, ".part.mp4")
    tmp_audio = _temp_path(path, ".part.f32") if audio is not None else None
    try:
        cmd = [
            ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", "-nostdin",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-framerate", _fps_arg(fps), "-i", "pipe:0",
        ]  # fmt: skip
        if tmp_audio is not None:
            audio.tofile(tmp_audio)
            cmd += ["-f", "f32le", "-ar", str(int(sample_rate)), "-ac", "2", "-i", str(tmp_audio)]
        cmd += [
            "-map", "0:v:0",
            "-vf", "scale=out_color_matrix=bt709:out_range=tv:flags=bicubic+accurate_rnd+full_chroma_int,format=yuv420p",
            "-c:v", "libx264", "-preset", preset, "-crf", str(int(crf)), "-pix_fmt", "yuv420p",
            "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
        ]  # fmt: skip
        if tmp_audio is not None:
            cmd += ["-map", "1:a:0", "-c:a", "aac", "-b:a", audio_bitrate, "-ar", str(int(sample_rate))]
        for key, value in (metadata or {}).items():
            if not re.fullmatch(r"[A-Za-z0-9_]+", str(key)):
                raise EncodeError(f"metadata keys must be letters, digits or '_', got {key!r}", value=key)
            cmd += ["-metadata", f"{key}={value}"]
        cmd += ["-movflags", "+faststart", "-f", "mp4", str(tmp_video)]

        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            # write in chunks of frames (avoid one huge bytes copy)
            for start in range(0, T, 8):
                proc.stdin.write(frames[start : start + 8].tobytes())
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # ffmpeg died; its stderr says why
        stderr = proc.stderr.read().decode("utf-8", "replace")
        proc.stderr.close()
        rc = proc.wait()
        if rc != 0 or not tmp_video.exists() or tmp_video.stat().st_size == 0:
            raise EncodeError(
                f"ffmpeg could not write {path.name} (exit status {rc}): {stderr.strip()[-800:]}",
                file=str(path),
                fix="check the disk space and the frames/audio passed to write_mp4",
            )
        os.replace(tmp_video, path)
    except EncodeError:
        tmp_video.unlink(missing_ok=True)
        raise
    except BaseException as exc:
        tmp_video.unlink(missing_ok=True)
        if isinstance(exc, Exception):
            raise EncodeError(
                f"could not write {path.name}: {type(exc).__name__}: {exc}", file=str(path)
            ) from exc
        raise
    finally:
        if tmp_audio is not None:
            tmp_audio.unlink(missing_ok=True)
    return path


def probe(path: str | Path) -> dict:
    """Describe a media file: codecs, size, fps, duration, frame count, audio, tags.

    Uses PyAV when it is installed, else parses ``ffmpeg -i``. Keys: ``video_codec``,
    ``pix_fmt``, ``width``, ``height``, ``fps``, ``frames`` (``None`` if unknown),
    ``duration`` (seconds), ``has_audio``, ``audio_codec``, ``sample_rate``, ``metadata``.
    """
    path = Path(path)
    if not path.is_file():
        raise EncodeError(f"no such file: {path}", file=str(path))
    try:
        import av
    except ImportError:
        return _probe_ffmpeg(path)
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


def _probe_ffmpeg(path: Path) -> dict:
    out = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
        check=False,
    ).stderr
    info: dict = {
        "video_codec": None, "pix_fmt": None, "width": None, "height": None, "fps": None, "frames": None,
        "duration": None, "has_audio": False, "audio_codec": None, "sample_rate": None, "metadata": {},
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
