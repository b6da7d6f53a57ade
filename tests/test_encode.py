"""write_mp4 / write_text_atomic / probe, checked by decoding what was written."""


import av  # the dev extra installs PyAV
import numpy as np
import pytest
from helpers import ebur128

from brandstudio.audio.music import fit_music
from brandstudio.encode import write_mp4
from brandstudio.errors import EncodeError
from brandstudio.files import write_text_atomic
from brandstudio.media import probe

SR = 48000
COLOURS = [(200, 40, 40), (40, 200, 60), (30, 60, 220)]


def _bars(t=24, h=64, w=96) -> np.ndarray:
    frames = np.zeros((t, h, w, 3), np.uint8)
    for k, c in enumerate(COLOURS):
        frames[:, :, k * w // 3 : (k + 1) * w // 3] = c
    return frames


def _music(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    return np.stack([x, x], axis=1)


def _decode(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        meta = dict(c.metadata)
        info = (
            v.codec_context.name,
            v.codec_context.pix_fmt,
            float(v.average_rate),
            v.codec_context.width,
            v.codec_context.height,
            a.codec_context.name if a else None,
        )
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    return info, frames, meta


def test_mp4_with_audio_decodes_as_written(tmp_path):
    fps, t = 16, 32
    bed = fit_music(_music(3.0), SR, t / fps, loudness=-14.0, true_peak=-1.0, fade_in=0.1, fade_out=0.2)
    out = write_mp4(
        _bars(t),
        fps,
        tmp_path / "clip.mp4",
        audio=bed,
        sample_rate=SR,
        metadata={"title": "Night Roast", "comment": "brandstudio fingerprint=abc123"},
    )
    assert out == tmp_path / "clip.mp4"
    (vcodec, pix_fmt, rate, w, h, acodec), frames, meta = _decode(out)
    assert (vcodec, pix_fmt, rate, w, h, acodec) == ("h264", "yuv420p", 16.0, 96, 64, "aac")
    assert abs(len(frames) - t) <= 1
    for k, c in enumerate(COLOURS):  # the middle of each bar keeps its colour (BT.709 round trip)
        px = frames[len(frames) // 2, 32, k * 32 + 16].astype(int)
        assert np.abs(px - c).max() <= 6, (k, px)
    assert meta["title"] == "Night Roast" and meta["comment"] == "brandstudio fingerprint=abc123"
    data = out.read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")  # +faststart
    info = probe(out)
    assert info["has_audio"] and info["sample_rate"] == SR and abs(info["duration"] - 2.0) < 0.1
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temp files left


def test_loudness_of_the_encoded_file(tmp_path):
    fps, t = 8, 48  # 6 s: enough gating blocks for a stable measurement
    bed = fit_music(_music(2.0), SR, t / fps, loudness=-14.0, true_peak=-1.0, fade_in=0.3, fade_out=0.5)
    out = write_mp4(_bars(t, 32, 48), fps, tmp_path / "loud.mp4", audio=bed)
    m = ebur128(out)
    integrated, peak = m["integrated"], m["true_peak"]
    assert abs(integrated + 14.0) <= 1.0
    assert peak <= -0.5  # ceiling -1 dBTP, AAC overshoot allowed a little


def test_mono_audio_and_short_audio_are_accepted(tmp_path):
    out = write_mp4(_bars(16, 32, 32), 16, tmp_path / "m.mp4", audio=_music(0.3)[:, 0])
    info = probe(out)
    assert info["audio_codec"] == "aac" and abs(info["duration"] - 1.0) < 0.1


def test_odd_size_is_a_clear_error(tmp_path):
    with pytest.raises(EncodeError, match="even"):
        write_mp4(np.zeros((4, 33, 48, 3), np.uint8), 16, tmp_path / "odd.mp4")
    assert list(tmp_path.iterdir()) == []


def test_failed_encode_leaves_no_file(tmp_path):
    target = tmp_path / "x.mp4"
    with pytest.raises(EncodeError, match="ffmpeg"):  # an unknown x264 preset makes ffmpeg fail
        write_mp4(_bars(4), 16, target, preset="no-such-preset")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(EncodeError):  # NaN audio
        write_mp4(_bars(4), 16, target, audio=np.full((SR, 2), np.nan))
    assert list(tmp_path.iterdir()) == []


def test_failed_encode_keeps_the_previous_file(tmp_path):
    target = write_mp4(_bars(8), 16, tmp_path / "keep.mp4")
    before = target.read_bytes()
    with pytest.raises(EncodeError):
        write_mp4(_bars(8), 16, target, preset="no-such-preset")
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.mp4"]


def test_bad_frames(tmp_path):
    with pytest.raises(EncodeError, match="uint8"):
        write_mp4(np.zeros((4, 32, 32, 3), np.float32), 16, tmp_path / "f.mp4")


def test_write_text_atomic(tmp_path):
    p = write_text_atomic(tmp_path / "sub" / "a.srt", "1\n00:00:00,000 --> 00:00:01,000\nhi\n")
    assert p.read_text(encoding="utf-8").endswith("hi\n")
    write_text_atomic(p, "new")
    assert p.read_text() == "new"
    assert [x.name for x in p.parent.iterdir()] == ["a.srt"]


def test_probe_without_pyav_parses_ffmpeg(tmp_path, monkeypatch):
    import builtins

    out = write_mp4(_bars(8), 16, tmp_path / "p.mp4", audio=_music(0.5), metadata={"title": "T"})
    real_import = builtins.__import__

    def no_av(name, *args, **kw):
        if name == "av":
            raise ImportError("no av")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_av)
    info = probe(out)
    assert info["video_codec"] == "h264" and info["width"] == 96 and info["height"] == 64
    assert info["fps"] == 16 and info["has_audio"] and info["audio_codec"] == "aac"
    assert info["metadata"]["title"] == "T"
