"""Writing the delivered MP4 (H.264 + AAC), atomically.

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

:class:`Mp4Writer` is the same encoder as a context manager that takes the frames a chunk at
a time (the post stage streams into it, so no clip is ever held whole); :func:`write_mp4` is a
thin wrapper over it for a clip already in memory.

Every file is written to a hidden temp file in the destination directory (``.NAME.*.part.mp4``)
and moved into place with ``os.replace``; on any failure the temp files are removed and
:class:`~brandstudio.errors.EncodeError` is raised, so ``path`` is either the complete
new file or untouched. The temp files are held with a lock while they are written, so that a
later run can tell the partials of a killed one (removed: :mod:`.partials`) from those of a
run still in progress (kept).

Example:
    >>> import numpy as np, tempfile, os
    >>> from brandstudio.encode import write_mp4
    >>> from brandstudio.media import probe
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
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..deliveries import DELIVERY_CODECS, Codec
from ..errors import EncodeError
from ..frames import check_frames
from ..media import ffmpeg_exe
from .partials import claim_temp

__all__ = ["Mp4Writer", "write_mp4"]


#: tags ffmpeg's MP4 muxer writes as iTunes-style atoms; any other key needs QuickTime ``mdta`` keys
_ITUNES_TAGS = frozenset(
    "title artist album_artist composer album date encoder encoding_tool comment genre copyright grouping "
    "lyrics description synopsis show episode_id network keywords track disc compilation".split()
)


def _mdta_flag(metadata: dict) -> str:
    """``"+use_metadata_tags"`` when a tag has a custom key (e.g. GB 45438's ``AIGC``), else ``""``.

    With it ffmpeg writes *every* tag as a QuickTime ``mdta`` key (read back by the same name);
    without it the MP4 muxer silently drops keys it does not know.
    """
    return "+use_metadata_tags" if any(k not in _ITUNES_TAGS for k in metadata) else ""


def _fps_arg(fps: float) -> str:
    frac = Fraction(fps).limit_denominator(1001)
    return f"{frac.numerator}/{frac.denominator}"


def _check_settings(path: Path, width: int, height: int, fps: float, crf: int, audio_bitrate: str) -> None:
    if path.is_dir():
        raise EncodeError(
            f"cannot write the clip to {path.name}: it is an existing folder", file=str(path),
            fix="name a file inside it, e.g. " + str(path / "clip.mp4"),
        )  # fmt: skip
    if height % 2 or width % 2:
        raise EncodeError(
            f"H.264 with yuv420p needs even frame sizes, got {width}x{height}",
            file=str(path),
            value=(width, height),
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


def _check_audio(path: Path, audio, n_samples: int) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[1] not in (1, 2):
        raise EncodeError(f"`audio` must have shape (n, 2) or (n,), got {audio.shape}", file=str(path))
    if audio.shape[1] == 1:
        audio = np.repeat(audio, 2, axis=1)
    if not np.isfinite(audio).all():
        raise EncodeError("`audio` holds NaN or inf samples", file=str(path))
    if audio.shape[0] < n_samples:
        audio = np.concatenate([audio, np.zeros((n_samples - audio.shape[0], 2), np.float32)])
    return np.ascontiguousarray(np.clip(audio[:n_samples], -1.0, 1.0))


def _widen_pipe(pipe) -> None:
    """Ask Linux for a 1 MiB pipe buffer (from 64 KiB): fewer wake-ups per 2.7 MB 720p frame."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError, ValueError):
        pass  # not Linux, or above /proc/sys/fs/pipe-max-size: the default buffer works too


class Mp4Writer:
    """Stream frames into an H.264/yuv420p (+ AAC) MP4, chunk by chunk; the file appears only when complete.

    A context manager: frames go to ffmpeg's stdin as they are written, so a clip never has to
    be held in memory whole. On a clean exit the temp file is moved to ``path``
    (``os.replace``); on any exception inside the block, or a failed encode, ffmpeg is stopped,
    the temp files are removed and ``path`` is left as it was.

    Args:
        path: the MP4 to write.
        width, height: the frame size (even numbers).
        fps: frames per second.
        n_frames: how many frames will be written. Required with ``audio`` (the soundtrack is
            padded with silence or trimmed to exactly ``n_frames / fps`` seconds); when given,
            writing a different number is an :class:`~brandstudio.errors.EncodeError`.
        audio, sample_rate, crf, audio_bitrate, metadata, preset: as for :func:`write_mp4`.
        codec: a name of :data:`~brandstudio.deliveries.DELIVERY_CODECS`: ``"h264"`` (MP4,
            4:2:0, ``crf``) or ``"prores-hq"`` (QuickTime, ProRes 422 HQ, 10-bit 4:2:2, 24-bit PCM).
        max_bitrate: a cap on the video bitrate in kbit/s (H.264: VBV ``maxrate`` with a two-second
            buffer on top of ``crf``), as delivery specs give one; ``None``: no cap.

    ``wait_seconds`` is the time spent blocked on ffmpeg (pipe writes that waited for the
    encoder, and finishing the file): the part of the encode that did not overlap other work.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from brandstudio.media import probe
        >>> out = os.path.join(tempfile.mkdtemp(), "s.mp4")
        >>> with Mp4Writer(out, 48, 32, 8, n_frames=8) as mp4:
        ...     for _ in range(2):
        ...         mp4.write(np.zeros((4, 32, 48, 3), np.uint8))
        >>> probe(out)["frames"], mp4.frames_written
        (8, 8)
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: float,
        *,
        n_frames: int | None = None,
        audio: np.ndarray | None = None,
        sample_rate: int = 48000,
        crf: int = 18,
        audio_bitrate: str = "192k",
        metadata: dict[str, str] | None = None,
        preset: str = "medium",
        codec: str = "h264",
        max_bitrate: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.width, self.height, self.fps = int(width), int(height), fps
        _check_settings(self.path, self.width, self.height, fps, crf, audio_bitrate)
        if codec not in DELIVERY_CODECS:
            raise EncodeError(f"unknown codec {codec!r}; use one of: {', '.join(DELIVERY_CODECS)}", field="codec",
                              value=codec)  # fmt: skip
        if max_bitrate is not None and not (isinstance(max_bitrate, int) and max_bitrate >= 100):
            raise EncodeError(f"`max_bitrate` must be kbit/s, at least 100, got {max_bitrate!r}", field="max_bitrate",
                              value=max_bitrate)  # fmt: skip
        self.codec: Codec = DELIVERY_CODECS[codec]
        self.max_bitrate = max_bitrate
        for key in metadata or {}:
            if not re.fullmatch(r"[A-Za-z0-9_]+", str(key)):
                raise EncodeError(f"metadata keys must be letters, digits or '_', got {key!r}", value=key)
        if audio is not None:
            if n_frames is None:
                raise EncodeError(
                    "a streamed MP4 with audio needs `n_frames` (the soundtrack is cut to the video's length)",
                    file=str(self.path),
                    field="n_frames",
                )
            audio = _check_audio(self.path, audio, round(n_frames / fps * sample_rate))
        self.n_frames = n_frames
        self._audio = audio
        self._settings = dict(
            sample_rate=int(sample_rate), crf=int(crf), audio_bitrate=audio_bitrate,
            metadata=dict(metadata or {}), preset=preset,
        )  # fmt: skip
        self.frames_written = 0
        self.wait_seconds = 0.0
        self._proc: subprocess.Popen | None = None
        self._tmp_video: Path | None = None
        self._tmp_audio: Path | None = None
        self._locks: list[int] = []  # held on the temp files while they are written (see .partials)
        self._stderr = None
        self._done = False

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> Mp4Writer:
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def open(self) -> Mp4Writer:
        """Start ffmpeg (done by ``with``)."""
        if self._proc is not None or self._done:
            raise EncodeError(f"{self.path.name}: this Mp4Writer was already opened", file=str(self.path))
        s = self._settings
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp_video = self._claim(f".part.{self.codec.container}")
        try:
            cmd = [
                ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", "-nostdin",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}",
                "-framerate", _fps_arg(self.fps), "-i", "pipe:0",
            ]  # fmt: skip
            if self._audio is not None:
                self._tmp_audio = self._claim(".part.f32")
                self._audio.tofile(self._tmp_audio)
                cmd += ["-f", "f32le", "-ar", str(s["sample_rate"]), "-ac", "2", "-i", str(self._tmp_audio)]
            cmd += ["-map", "0:v:0", *self._video_args(s)]
            if self._audio is not None:
                cmd += ["-map", "1:a:0", "-c:a", self.codec.audio_encoder, "-ar", str(s["sample_rate"])]
                if self.codec.audio_encoder == "aac":
                    cmd += ["-b:a", s["audio_bitrate"]]
            for key, value in s["metadata"].items():
                cmd += ["-metadata", f"{key}={value}"]
            container = "mov" if self.codec.container == "mov" else "mp4"
            cmd += ["-movflags", "+faststart" + _mdta_flag(s["metadata"]), "-f", container, str(self._tmp_video)]
            # stderr goes to a file: a pipe nobody reads could fill up and stall ffmpeg
            self._stderr = tempfile.TemporaryFile()
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr
            )
            _widen_pipe(self._proc.stdin)
        except BaseException:
            self._cleanup(keep_video=False)
            raise
        return self

    def _video_args(self, s: dict) -> list[str]:
        """The video encoder's arguments: BT.709 limited range in the codec's pixel format."""
        pix = self.codec.pixel_format
        args = [
            "-vf", f"scale=out_color_matrix=bt709:out_range=tv:flags=bicubic+accurate_rnd+full_chroma_int,format={pix}",
            "-c:v", self.codec.encoder,
        ]  # fmt: skip
        if self.codec.encoder == "libx264":
            args += ["-preset", s["preset"], "-crf", str(s["crf"])]
            if self.max_bitrate is not None:  # VBV: the cap holds over any two seconds
                args += ["-maxrate", f"{self.max_bitrate}k", "-bufsize", f"{2 * self.max_bitrate}k"]
        for key, value in self.codec.options:
            args += [f"-{key}", value]
        return args + [
            "-pix_fmt", pix,
            "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
        ]  # fmt: skip

    def write(self, frames: np.ndarray) -> None:
        """Append ``frames`` (uint8 ``(n, H, W, 3)``, or one ``(H, W, 3)`` frame) to the video."""
        if self._proc is None or self._done:
            raise EncodeError(f"{self.path.name}: write() outside an open Mp4Writer", file=str(self.path))
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3):
            raise EncodeError(
                f"cannot encode {self.path.name}: expected uint8 frames of shape (n, {self.height}, "
                f"{self.width}, 3), got {frames.dtype} {frames.shape}",
                file=str(self.path),
            )
        if self.n_frames is not None and self.frames_written + len(frames) > self.n_frames:
            raise EncodeError(
                f"{self.path.name}: more frames written than the {self.n_frames} announced",
                file=str(self.path),
                field="n_frames",
            )
        t0 = time.perf_counter()
        try:
            self._proc.stdin.write(memoryview(np.ascontiguousarray(frames)).cast("B"))
        except (BrokenPipeError, OSError):
            self.wait_seconds += time.perf_counter() - t0
            raise self._failure("ffmpeg stopped reading frames") from None
        self.wait_seconds += time.perf_counter() - t0
        self.frames_written += len(frames)

    def close(self) -> Path:
        """Finish the file and move it into place; returns ``path``."""
        if self._done:
            return self.path
        if self._proc is None:
            raise EncodeError(f"{self.path.name}: close() before open()", file=str(self.path))
        try:
            if self.frames_written == 0:
                raise EncodeError(
                    f"cannot encode {self.path.name}: no frames were written", file=str(self.path)
                )
            if self.n_frames is not None and self.frames_written != self.n_frames:
                raise EncodeError(
                    f"{self.path.name}: {self.frames_written} frames written, {self.n_frames} announced",
                    file=str(self.path),
                    field="n_frames",
                )
            t0 = time.perf_counter()
            try:
                self._proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            rc = self._proc.wait()
            self.wait_seconds += time.perf_counter() - t0
            if rc != 0 or not self._tmp_video.exists() or self._tmp_video.stat().st_size == 0:
                raise self._failure(f"exit status {rc}")
            os.replace(self._tmp_video, self.path)
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._cleanup(keep_video=True)
        return self.path

    def abort(self) -> None:
        """Stop ffmpeg and remove the temp files; ``path`` is left untouched."""
        self._done = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        if self._proc is not None:
            try:
                self._proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            self._proc.wait()
        self._cleanup(keep_video=False)

    def _failure(self, what: str) -> EncodeError:
        if self._proc is not None:
            try:
                self._proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            rc = self._proc.wait()
        else:
            rc = None
        stderr = ""
        if self._stderr is not None:
            self._stderr.seek(0)
            stderr = self._stderr.read().decode("utf-8", "replace")
        return EncodeError(
            f"ffmpeg could not write {self.path.name} ({what}, exit status {rc}): {stderr.strip()[-800:]}",
            file=str(self.path),
            fix="check the disk space and the frames/audio passed to the encoder",
        )

    def _claim(self, suffix: str) -> Path:
        """A new temp file beside ``path``, held locked until :meth:`_cleanup`."""
        tmp, lock = claim_temp(self.path, suffix)
        if lock is not None:
            self._locks.append(lock)
        return tmp

    def _cleanup(self, keep_video: bool) -> None:
        if self._tmp_audio is not None:
            self._tmp_audio.unlink(missing_ok=True)
        if not keep_video and self._tmp_video is not None:
            self._tmp_video.unlink(missing_ok=True)
        while self._locks:  # released only once the files are gone or in place
            os.close(self._locks.pop())
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


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
    file at ``path``) if the frames cannot be encoded or ffmpeg fails. A thin wrapper over
    :class:`Mp4Writer` (which streams chunks of frames instead of a whole clip).
    """
    path = Path(path)
    try:
        frames = check_frames(frames)
    except ValueError as exc:
        raise EncodeError(f"cannot encode {path.name}: {exc}", file=str(path)) from None
    T, H, W, _ = frames.shape
    try:
        with Mp4Writer(
            path, W, H, fps, n_frames=T, audio=audio, sample_rate=sample_rate, crf=crf,
            audio_bitrate=audio_bitrate, metadata=metadata, preset=preset,
        ) as mp4:  # fmt: skip
            for start in range(0, T, 8):  # chunks of frames: no one huge bytes copy
                mp4.write(frames[start : start + 8])
    except EncodeError:
        raise
    except Exception as exc:
        raise EncodeError(
            f"could not write {path.name}: {type(exc).__name__}: {exc}", file=str(path)
        ) from exc
    return path


