"""The post stage as a stream: effects run on chunks of frames that flow straight into the encoder.

A generated clip is small (81 frames at the model's size); the delivered one is not (81 frames
of 1280x720 are 224 MB as uint8, 900 MB as float32). So the post stage never builds the
delivered clip: :class:`PostChain` takes the generated frames and yields the delivered ones a
chunk at a time, and :func:`run_stream` feeds each chunk to *observers* (QC sampling, frame
checks) and to a *sink* (:class:`brandstudio.encode.Mp4Writer`, whose ffmpeg encodes while
the next chunk is being made)::

    generated frames ─► source effects ─► retime ─► output effects ─► observers ─► sink (ffmpeg stdin)
    (T, h, w, 3)        grade, reframe,   frame_map  captions, logo,   QC sampler,   libx264 + AAC,
     at fps_in          upscale           (indices)  label             frame checks  temp file + rename

**Effects** are :class:`~brandstudio.post.effect.Effect` values: ``apply_at(frames, start)``
(``frames[k]`` is frame ``start + k`` of the clip) for the chunks the stream makes, and
``apply_inplace_at`` for the delivered chunks it owns. Source effects see source frame numbers
(the generated clip at the model's frame rate), output effects see delivered frame numbers.
``prepare(shape)`` is called with the whole source's shape once before the first chunk (the
grade bakes its lookup table exactly when a whole-clip grade would, so streamed and whole-clip
output are identical).

**Observers** are callables ``observer(start, frames)``, called in order with every delivered
chunk before it is encoded (``frames[k]`` is delivered frame ``start + k``; read-only: copy what
you keep). An exception from an observer (a frame check that blocks the clip) stops the stream,
and the encoder sink then leaves no file.

Example:
    >>> import numpy as np
    >>> from brandstudio.post.reframe import Reframe
    >>> from brandstudio.post.upscale import Upscale
    >>> chain = PostChain(
    ...     source_effects=(Reframe("1:1"), Upscale(8, 8)),
    ...     frame_map=PostChain.retime_map(6, fps_in=16, fps_out=8, n_out=3),
    ... )
    >>> src = np.arange(6, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 6, 3), np.uint8)
    >>> [(start, f.shape, f[:, 0, 0, 0].tolist()) for start, f in chain.chunks(src, chunk_size=2)]
    [(0, (2, 8, 8, 3), [0, 2]), (2, (1, 8, 8, 3), [4])]
    >>> seen = []
    >>> stats = run_stream(chain, src, sink=None, observers=[lambda s, f: seen.append(s)], chunk_size=2)
    >>> seen, stats.frames
    ([0, 2], 3)
    >>> bool((chain.apply(src) == np.concatenate([f for _, f in chain.chunks(src)])).all())
    True
    >>> lazy = chain.frames_at(src)        # single delivered frames on demand (e.g. for a sampled check)
    >>> len(lazy), int(lazy[2][0, 0, 0])
    (3, 4)
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brandstudio.frames import check_frames

from .effect import Effect, as_effect
from .interpolate import Retime, timeline

__all__ = [
    "DEFAULT_CHUNK",
    "DeliveredFrames",
    "Observer",
    "PostChain",
    "StreamStats",
    "run_stream",
]

#: delivered frames per chunk: 8 frames of 1280x720 are 22 MB
DEFAULT_CHUNK = 8

Observer = Callable[[int, np.ndarray], Any]


def _runs(indices: np.ndarray) -> list[np.ndarray]:
    """Split sorted unique indices into runs of consecutive numbers."""
    cut = np.flatnonzero(np.diff(indices) != 1) + 1
    return np.split(indices, cut)


@dataclass(frozen=True, eq=False)
class PostChain:
    """The post stage's effects, in order, and the retime between them.

    Args:
        source_effects: applied to the generated frames, at the model's frame rate
            (grade, reframe, upscale).
        frame_map: delivered frame ``i`` shows source frame ``frame_map[i]`` (from
            :meth:`retime_map`); ``None`` keeps every source frame.
        output_effects: applied to the delivered frames (captions, logo, label).
        retime: in-between frames (:class:`~brandstudio.post.interpolate.Retime`): delivered
            frame ``i`` is made from source frames ``left[i]`` and ``right[i]`` of its timeline
            (after the source effects, so the flow sees graded, delivery-sized frames); the
            ``frame_map`` is then its ``left`` frames.
    """

    source_effects: tuple[Effect, ...] = ()
    frame_map: np.ndarray | None = None
    output_effects: tuple[Effect, ...] = field(default=())
    retime: Retime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "source_effects", tuple(as_effect(e) for e in self.source_effects))
        object.__setattr__(self, "output_effects", tuple(as_effect(e) for e in self.output_effects))
        if self.retime is not None:
            if self.frame_map is not None and not np.array_equal(self.frame_map, self.retime.timeline.left):
                raise ValueError("give a `frame_map` or a `retime`, not both")
            object.__setattr__(self, "frame_map", self.retime.timeline.left)
        if self.frame_map is not None:
            fmap = np.asarray(self.frame_map)
            if (
                fmap.ndim != 1
                or fmap.size == 0
                or not np.issubdtype(fmap.dtype, np.integer)
                or (fmap < 0).any()
            ):
                raise ValueError("`frame_map` must be a non-empty 1-D array of non-negative frame indices")
            object.__setattr__(self, "frame_map", fmap.astype(np.int64))

    @staticmethod
    def retime_map(n_source: int, fps_in: float, fps_out: float, n_out: int) -> np.ndarray:
        """Nearest-earlier-frame retime: delivered frame ``i`` shows source frame ``floor(i * fps_in / fps_out)``
        (clamped to the last source frame), for ``n_out`` delivered frames.

        Example:
            >>> PostChain.retime_map(5, 16, 24, 6).tolist()
            [0, 0, 1, 2, 2, 3]
        """
        return timeline(n_source, fps_in, fps_out, n_out).left  # the timeline's earlier frames, exact times

    def _map(self, n_source: int) -> np.ndarray:
        if self.frame_map is None:
            return np.arange(n_source, dtype=np.int64)
        if int(self.frame_map.max()) >= n_source:
            raise ValueError(
                f"`frame_map` asks for source frame {int(self.frame_map.max())}, the clip has {n_source}"
            )
        return self.frame_map

    def n_frames(self, n_source: int) -> int:
        """How many frames are delivered from ``n_source`` generated ones."""
        return len(self._map(n_source))

    def with_output_effects(self, *effects: Effect | None) -> PostChain:
        """A copy with ``effects`` appended to the output effects (``None`` entries are skipped)."""
        more = tuple(e for e in effects if e is not None)
        return PostChain(self.source_effects, self.frame_map, self.output_effects + more, self.retime)

    def frames_at(self, source: np.ndarray) -> DeliveredFrames:
        """The delivered clip as a lazy sequence: ``len()`` frames, each made on demand by ``[i]``.

        For checks that look at a few sampled frames before the stream starts (the NSFW scan):
        frame ``i`` is exactly the ``i``-th frame :meth:`chunks` would deliver.
        """
        source = check_frames(source, name="source")
        self._prepare(source.shape)
        self._map(len(source))  # checks the map against the clip
        return DeliveredFrames(self, source)

    def _prepare(self, shape: tuple[int, ...]) -> None:
        for effect in self.source_effects:
            effect.prepare(shape)

    def apply(self, source: np.ndarray) -> np.ndarray:
        """The whole clip at once: every effect on every frame, in order (holds the delivered clip in memory).

        This is what the post stage did before it streamed; :meth:`chunks` gives the same frames.
        """
        frames = check_frames(source, name="source")
        fmap = self._map(len(frames))
        for effect in self.source_effects:
            frames = effect.apply_at(frames, 0)
        if self.retime is not None:
            frames = self.retime.deliver(frames, 0, len(fmap))
        else:
            frames = frames[fmap]  # a new array (fancy indexing copies): the overlays may draw into it
        for effect in self.output_effects:
            frames = effect.apply_inplace_at(frames, 0)
        return frames

    def chunks(
        self, source: np.ndarray, chunk_size: int = DEFAULT_CHUNK, *, workers: int = 1
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, frames)``: the delivered clip, ``chunk_size`` frames at a time, in order.

        Each source frame goes through the source effects once (a frame shown twice by the
        retime is not graded twice, also across chunk boundaries); ``source`` is not modified.
        With ``workers > 1``, that many chunks are made at once on threads (numpy, Pillow and
        ffmpeg release the GIL), at most ``workers + 1`` ahead; the frames are the same.
        """
        if chunk_size < 1:
            raise ValueError(f"`chunk_size` must be at least 1, got {chunk_size}")
        source = check_frames(source, name="source")
        fmap = self._map(len(source))
        self._prepare(source.shape)
        starts = range(0, len(fmap), chunk_size)
        if workers <= 1:
            last: dict[int, np.ndarray] = {}  # the previous chunk's last processed source frames
            for start in starts:
                out, last = self._chunk(source, fmap, start, min(start + chunk_size, len(fmap)), last)
                yield start, out
            return

        with ThreadPoolExecutor(workers, thread_name_prefix="brandstudio-post") as pool:
            pending: deque = deque()
            try:
                for start in starts:
                    stop = min(start + chunk_size, len(fmap))
                    pending.append((start, pool.submit(self._chunk, source, fmap, start, stop)))
                    if len(pending) > workers:
                        s0, fut = pending.popleft()
                        yield s0, fut.result()[0]
                while pending:
                    s0, fut = pending.popleft()
                    yield s0, fut.result()[0]
            finally:
                for _, fut in pending:
                    fut.cancel()

    def _chunk(
        self, source: np.ndarray, fmap: np.ndarray, start: int, stop: int, last: dict[int, np.ndarray] | None = None
    ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """Delivered frames ``start .. stop - 1``, and the last two source frames made (reused by
        the next chunk when it shows or interpolates from them again)."""
        idx = fmap[start:stop]
        wanted = self.retime.sources(start, stop) if self.retime is not None else np.unique(idx)
        done: dict[int, np.ndarray] = {i: f for i, f in (last or {}).items() if i in wanted}
        wanted = wanted[~np.isin(wanted, list(done))]
        runs = _runs(wanted) if wanted.size else []
        out = None
        for run in runs:
            frames = source[run[0] : run[-1] + 1]
            for effect in self.source_effects:
                frames = effect.apply_at(frames, int(run[0]))
            if not done and len(runs) == 1 and self.retime is None and np.array_equal(run, idx):
                out = frames  # the common case (no retime): the run is the chunk, no copy
            for k, i in enumerate(run.tolist()):
                done[i] = frames[k]
        if out is None:
            out = self.retime.deliver(done, start, stop) if self.retime is not None else np.stack(
                [done[i] for i in idx.tolist()]
            )
        last = {i: done[i] for i in sorted(done)[-2:]}
        if self.output_effects:
            if np.may_share_memory(out, source) or not out.flags.writeable:
                out = out.copy()  # no source effect made new frames: draw on a copy, never on the source
            else:
                # the next chunk may show them again: keep them undrawn
                last = {i: f.copy() if np.may_share_memory(out, f) else f for i, f in last.items()}
            for effect in self.output_effects:
                out = effect.apply_inplace_at(out, start)
        return np.ascontiguousarray(out), last


class DeliveredFrames(Sequence):
    """A lazily computed delivered clip (from :meth:`PostChain.frames_at`): ``clip[i]`` is one
    ``(H, W, 3)`` uint8 frame, made on demand (a few are kept), ``len(clip)`` the frame count."""

    def __init__(self, chain: PostChain, source: np.ndarray) -> None:
        self._chain, self._source = chain, source
        self._map = chain._map(len(source))
        self._kept: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._map)

    def _source_frame(self, j: int) -> np.ndarray:
        frame = self._source[j : j + 1]
        for effect in self._chain.source_effects:
            frame = effect.apply_at(frame, j)
        return frame[0]

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return np.stack([self[k] for k in range(*i.indices(len(self)))])
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"frame {i} of a clip of {len(self)}")
        if i not in self._kept:
            retime = self._chain.retime
            if retime is None:
                frame = self._source_frame(int(self._map[i]))[None]
            else:
                frame = retime.deliver({j: self._source_frame(j) for j in retime.sources(i, i + 1).tolist()}, i, i + 1)
            for effect in self._chain.output_effects:
                frame = effect.apply_at(frame, i)
            if len(self._kept) >= 32:
                self._kept.pop(next(iter(self._kept)))
            self._kept[i] = np.ascontiguousarray(frame[0])
        return self._kept[i]

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(T, H, W, 3)`` of the delivered clip (makes frame 0 to learn the size)."""
        return (len(self), *self[0].shape)


@dataclass
class StreamStats:
    """What one streamed run did and where its time went (seconds).

    ``post_seconds`` is the producer's wall time spent getting chunks from the effects (with
    several workers they are made in parallel, so this is less than their CPU time);
    ``observer_seconds`` time in the observers; ``sink_seconds`` time blocked in
    ``sink.write`` (for an :class:`~brandstudio.encode.Mp4Writer`: waiting for ffmpeg to take
    the frames); ``wall_seconds`` the whole run. With the producer thread, effects and encoding
    overlap, so the parts add up to more than the wall time.
    """

    frames: int = 0
    chunks: int = 0
    post_seconds: float = 0.0
    observer_seconds: float = 0.0
    sink_seconds: float = 0.0
    wall_seconds: float = 0.0


_DONE = object()


def run_stream(
    chain: PostChain,
    source: np.ndarray,
    sink,
    *,
    observers: Sequence[Observer] | Iterable[Observer] = (),
    chunk_size: int = DEFAULT_CHUNK,
    threaded: bool = True,
    prefetch: int = 2,
    workers: int | None = None,
) -> StreamStats:
    """Stream ``source`` through ``chain`` into ``sink.write(frames)``, calling ``observers`` on every chunk.

    ``sink`` is anything with ``write(frames)`` (an open :class:`~brandstudio.encode.Mp4Writer`)
    or ``None``. With ``threaded`` (default) a producer thread makes the next chunks (at most
    ``prefetch`` ahead, which bounds memory) while this thread hands the current one to the
    observers and the sink, so the effects run while ffmpeg encodes; ``workers`` chunks are made
    at once (default: 2 when the machine has more than one CPU). Any exception (from an
    effect, an observer or the sink) stops the stream and is raised here; the caller's
    ``with Mp4Writer(...)`` then removes the partial file.
    """
    observers = list(observers)
    stats = StreamStats()
    t_start = time.perf_counter()

    def consume(start: int, frames: np.ndarray) -> None:
        frames.setflags(write=False)
        t0 = time.perf_counter()
        for observe in observers:
            observe(start, frames)
        t1 = time.perf_counter()
        if sink is not None:
            sink.write(frames)
        t2 = time.perf_counter()
        stats.observer_seconds += t1 - t0
        stats.sink_seconds += t2 - t1
        stats.frames += len(frames)
        stats.chunks += 1

    if workers is None:
        workers = 2 if (os.cpu_count() or 1) > 1 else 1
    gen = chain.chunks(source, chunk_size, workers=workers if threaded else 1)
    if not threaded:
        while True:
            t0 = time.perf_counter()
            item = next(gen, None)
            stats.post_seconds += time.perf_counter() - t0
            if item is None:
                break
            consume(*item)
        stats.wall_seconds = time.perf_counter() - t_start
        return stats

    q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()
    produce_time = [0.0]

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                item = next(gen, _DONE)
                produce_time[0] += time.perf_counter() - t0
                if not put(item) or item is _DONE:
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    worker = threading.Thread(target=produce, name="brandstudio-post", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            consume(*item)
    finally:
        stop.set()
        worker.join()
        gen.close()
        stats.post_seconds = produce_time[0]
        stats.wall_seconds = time.perf_counter() - t_start
    return stats
