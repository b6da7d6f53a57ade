"""The streamed post stage: chunks through the effects into ffmpeg give the whole-clip result, atomically.

The reference is :meth:`PostChain.apply` (every effect on the whole clip, the post stage as it
was before streaming). Streamed chunks must match it pixel for pixel, whatever the chunk size
and retime; the streamed MP4 must decode to what ``write_mp4`` of the whole clip decodes to;
and a failure in the middle of the stream must leave no file behind.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import PROFILES, decode_frames

from brandstudio.encode import Mp4Writer, write_mp4
from brandstudio.errors import EncodeError, PostError
from brandstudio.post.captions import Captions, CaptionStyle
from brandstudio.post.grade import Grade, read_lut
from brandstudio.post.label import Label, LabelPlan, RegionLabel
from brandstudio.post.logo import Logo, load_logo
from brandstudio.post.reframe import Reframe
from brandstudio.post.stream import PostChain, run_stream
from brandstudio.post.subtitles import Cue
from brandstudio.post.upscale import Upscale
from brandstudio.qc import QCCollector, report

AURORA = PROFILES / "aurora-coffee"
FONT = AURORA / "fonts" / "NotoSerif-Bold.ttf"


def source(t: int = 17, h: int = 36, w: int = 64, seed: int = 0) -> np.ndarray:
    """Moving gradients + noise: every frame differs, every pixel value occurs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    frames = [
        np.stack([(x * 4 + 9 * i) % 256, (y * 7 + 5 * i) % 256, (x + y + 13 * i) % 256], axis=-1)
        for i in range(t)
    ]
    noisy = np.asarray(frames, np.int16) + rng.integers(-12, 13, (t, h, w, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def chain(n_src: int, fps_in: int, fps_out: int, n_out: int, *, bake: bool = False) -> PostChain:
    """The render's effects at a tiny size: grade, reframe, upscale; retime; captions, logo, label."""
    grade = Grade(read_lut(AURORA / "luts" / "aurora-warm.cube"), strength=0.85, cache=False)
    cues = (Cue(0.0, 0.4, "Night Roast"), Cue(0.4, 0.9, "Roasted slowly"))  # cue edges inside chunks
    return PostChain(
        source_effects=(grade, Reframe("9:16"), Upscale(72, 128)),
        frame_map=PostChain.retime_map(n_src, fps_in, fps_out, n_out),
        output_effects=(
            Captions(cues, CaptionStyle(FONT, size=0.1), fps_out),
            Logo(load_logo(AURORA / "logo.png"), scale=0.3),
            RegionLabel(LabelPlan("cn", "AI", "opening", 0.3, 0.08, 0.0, "top-left"), FONT, fps=fps_out),
            Label("AI", FONT, position="bottom-left", size=0.08),
        ),
    )


@pytest.mark.parametrize(
    ("fps_in", "fps_out", "n_out"),
    [(16, 16, 16), (16, 24, 25), (16, 10, 9)],  # same rate, up (repeats frames), down (skips frames)
)
@pytest.mark.parametrize("chunk", [1, 3, 8])
def test_chunks_equal_the_whole_clip(fps_in, fps_out, n_out, chunk):
    src = source()
    c = chain(len(src), fps_in, fps_out, n_out)
    whole = c.apply(src)
    parts = list(c.chunks(src, chunk_size=chunk))
    assert [s for s, _ in parts] == list(range(0, n_out, chunk))
    streamed = np.concatenate([f for _, f in parts])
    assert streamed.shape == whole.shape == (n_out, 128, 72, 3)
    assert np.array_equal(streamed, whole)
    # and the effects did something: captions on the early frames, not on the late ones
    plain = PostChain(c.source_effects, c.frame_map).apply(src)
    assert (whole[0] != plain[0]).any()


class Spy:
    """A source effect that records ``prepare`` and the frame numbers it is applied at."""

    def __init__(self) -> None:
        self.calls: list = []

    def prepare(self, shape):
        self.calls.append(("prepare", shape))

    def apply_at(self, frames, start):
        self.calls.append(("apply", start, len(frames)))
        return frames


def test_source_effects_are_prepared_for_the_whole_clip_and_see_source_frame_numbers():
    src = source(t=9)
    spy = Spy()
    c = PostChain((spy,), PostChain.retime_map(9, 16, 8, 4))  # source frames 0, 2, 4, 6
    list(c.chunks(src, chunk_size=2))
    assert spy.calls == [
        ("prepare", src.shape),
        ("apply", 0, 1),
        ("apply", 2, 1),
        ("apply", 4, 1),
        ("apply", 6, 1),
    ]
    spy.calls.clear()
    list(PostChain((spy,), PostChain.retime_map(9, 16, 32, 18)).chunks(src, chunk_size=4))
    applied = [c[1] for c in spy.calls if c[0] == "apply"]
    assert applied == [0, 2, 4, 6, 8]  # each source frame once, though every one is shown twice
    assert [c[2] for c in spy.calls if c[0] == "apply"] == [2, 2, 2, 2, 1]


def test_grade_bakes_when_the_whole_clip_would(monkeypatch):
    """The grade's 8-bit table is baked for a clip over the threshold, so every chunk gets the
    table's pixels, exactly as a whole-clip grade would."""
    import brandstudio.post.grade as grade_mod

    src = source(t=9)
    monkeypatch.setattr(grade_mod, "_BAKE_THRESHOLD", src[..., 0].size)  # the clip bakes, a chunk would not
    g = Grade(read_lut(AURORA / "luts" / "aurora-warm.cube"), strength=0.85, cache=False)
    baked = []
    monkeypatch.setattr(Grade, "baked", lambda self: baked.append(1) or np.zeros((256**3, 3), np.uint8))
    g.prepare(src[:8].shape)
    assert baked == []  # under the threshold: the direct kernel, no bake
    g.prepare(src.shape)
    assert baked == [1]


def test_nsfw_blur_effect_streams_like_the_whole_clip():
    """The frame-safety blur (boxes per delivered frame) joins the chain like any effect."""
    from brandstudio.safety.frames import Detection, NsfwBlur

    src = source()
    hits = {0: [], 4: [], 8: [Detection("X", 0.9, (10, 20, 30, 40))], 12: [], 16: []}
    c = chain(len(src), 16, 16, 17).with_output_effects(NsfwBlur.from_hits(hits, 17, 72, 128))
    whole = c.apply(src)
    assert np.array_equal(np.concatenate([f for _, f in c.chunks(src, chunk_size=5)]), whole)
    plain = chain(len(src), 16, 16, 17).apply(src)
    assert (whole[8, 20:60, 10:40] != plain[8, 20:60, 10:40]).any() and np.array_equal(whole[0], plain[0])


def test_lazy_frames_match_the_stream():
    src = source()
    c = chain(len(src), 16, 24, 25)
    lazy = c.frames_at(src)
    whole = c.apply(src)
    assert len(lazy) == 25 and lazy.shape == (25, 128, 72, 3)
    for i in (0, 7, 24, -1):
        assert np.array_equal(lazy[i], whole[i])


@pytest.mark.parametrize("sources", ["all", "none"])
def test_overlays_draw_in_place_on_the_streams_own_frames_only(sources):
    """Captions, logo and label draw into the chunk the stream made (no whole-chunk copies); a
    frame the retime shows again in the next chunk is not drawn twice, and without source
    effects the caller's frames are never drawn on. Reference: single frames through copying
    ``apply_effect`` (``frames_at``)."""
    src = source()
    before = src.copy()
    full = chain(len(src), 16, 24, 25)
    c = full if sources == "all" else PostChain((), full.frame_map, full.output_effects)
    lazy = c.frames_at(src)
    for chunk in (1, 3, 8):
        streamed = np.concatenate([f for _, f in c.chunks(src, chunk_size=chunk)])
        assert all(np.array_equal(streamed[i], lazy[i]) for i in range(len(lazy)))
    assert np.array_equal(src, before)
    assert np.array_equal(c.apply(src), streamed) and np.array_equal(src, before)


def test_streamed_mp4_decodes_like_the_whole_clip_mp4(tmp_path):
    src = source(t=17, h=72, w=128)
    c = PostChain((Reframe("16:9"), Upscale(96, 54)), PostChain.retime_map(17, 16, 16, 16))
    c = c.with_output_effects(Label("AI", FONT, size=0.1))
    whole = c.apply(src)
    ref = write_mp4(whole, 16, tmp_path / "whole.mp4")
    qc = QCCollector(16)
    with Mp4Writer(tmp_path / "streamed.mp4", 96, 54, 16, n_frames=16) as mp4:
        stats = run_stream(c, src, mp4, observers=[qc], chunk_size=5)
    assert stats.frames == 16 and stats.chunks == 4 and mp4.frames_written == 16
    a, b = decode_frames(ref), decode_frames(tmp_path / "streamed.mp4")
    assert a.shape == b.shape == (16, 54, 96, 3)
    assert np.array_equal(a, b)  # same frames in, same deterministic x264: same pixels out
    # QC fed from the stream measures what QC of the whole clip measures
    from brandstudio import load_profile

    prof = load_profile(AURORA)
    streamed_report, whole_report = report(qc, prof, fps=16), report(whole, prof, fps=16)
    assert streamed_report.flicker == whole_report.flicker and streamed_report.delta_e == whole_report.delta_e


def test_threaded_and_plain_streams_agree():
    src = source()
    c = chain(len(src), 16, 16, 16)
    got = {}
    for threaded in (True, False):
        seen = []
        stats = run_stream(
            c, src, None, observers=[lambda s, f, seen=seen: seen.append((s, f.copy()))], threaded=threaded
        )
        got[threaded] = np.concatenate([f for _, f in seen])
        assert [s for s, _ in seen] == [0, 8] and stats.frames == 16 and stats.post_seconds > 0
    assert np.array_equal(got[True], got[False])


class Exploding:
    """An effect that fails on the frame ``at`` (like a corrupt asset discovered mid-clip)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def apply_at(self, frames, start):
        if start <= self.at < start + len(frames):
            raise PostError(f"effect failed on frame {self.at}")
        return frames


@pytest.mark.parametrize("where", ["effect", "observer"])
def test_failure_mid_stream_leaves_no_file(tmp_path, where):
    src = source(t=17)
    target = tmp_path / "clip.mp4"
    c = PostChain(
        (Reframe("16:9"), Upscale(64, 36)),
        output_effects=(Exploding(12) if where == "effect" else Label("AI", FONT),),
    )

    def observer(start, frames):
        if start >= 8:
            raise PostError("a frame check blocked the clip")

    bed = np.zeros((48000, 2), np.float32)
    with pytest.raises(PostError):
        with Mp4Writer(target, 64, 36, 16, n_frames=17, audio=bed) as mp4:
            run_stream(c, src, mp4, observers=[observer] if where == "observer" else [], chunk_size=4)
    assert mp4.frames_written >= 8  # it failed in the middle, not before starting
    assert list(tmp_path.iterdir()) == []  # no clip, no temp video, no temp audio


def test_failed_stream_keeps_the_previous_clip(tmp_path):
    target = write_mp4(source(t=4, h=36, w=64), 16, tmp_path / "keep.mp4")
    before = target.read_bytes()
    c = PostChain(output_effects=(Exploding(5),))
    with pytest.raises(PostError):
        with Mp4Writer(target, 64, 36, 16) as mp4:
            run_stream(c, source(t=9, h=36, w=64), mp4, chunk_size=2)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["keep.mp4"]


def test_writer_checks_what_it_is_given(tmp_path):
    with pytest.raises(EncodeError, match="announced"):
        with Mp4Writer(tmp_path / "short.mp4", 64, 36, 16, n_frames=8) as mp4:
            mp4.write(source(t=4, h=36, w=64))
    with pytest.raises(EncodeError, match=r"shape \(n, 36, 64, 3\)"):
        with Mp4Writer(tmp_path / "shape.mp4", 64, 36, 16) as mp4:
            mp4.write(source(t=2, h=38, w=64))
    with pytest.raises(EncodeError, match="n_frames"):
        Mp4Writer(tmp_path / "a.mp4", 64, 36, 16, audio=np.zeros((100, 2)))
    with pytest.raises(EncodeError, match="even"):
        Mp4Writer(tmp_path / "odd.mp4", 63, 36, 16)
    assert list(tmp_path.iterdir()) == []
