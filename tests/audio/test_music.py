import subprocess

import numpy as np
import pytest

from brandstudio.audio.music import fit_music, integrated_loudness, load_audio, loop_to_length, true_peak_db
from brandstudio.errors import AssetError, PostError

SR = 48000
PROFILES = __import__("pathlib").Path(__file__).resolve().parents[2] / "brand_profiles"


def _base(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (
        np.sin(2 * np.pi * 110 * t)
        + 0.5 * np.sin(2 * np.pi * 220 * t + 1)
        + 0.3 * rng.standard_normal(t.size)
    )


def loud_track() -> np.ndarray:
    """About -6 LUFS, sample peaks at 0 dBFS (a heavily compressed master)."""
    x = np.tanh(0.3 * _base(3.0))
    x = np.stack([x, np.roll(x, 50)], axis=1)
    return x / np.abs(x).max()


def quiet_track() -> np.ndarray:
    """-30 LUFS with drum-like transients (high crest factor: the limiter has work to do)."""
    rng = np.random.default_rng(1)
    t = np.arange(int(3.0 * SR)) / SR
    x = 0.06 * np.sin(2 * np.pi * 220 * t) + np.exp(-(t % 0.5) * 30) * rng.standard_normal(t.size)
    x = np.stack([x, x], axis=1)
    return x * 10 ** ((-30 - integrated_loudness(x, SR)) / 20)


def test_track_fixtures_are_what_they_claim():
    loud = loud_track()
    assert -7 < integrated_loudness(loud, SR) < -5
    assert np.abs(loud).max() == pytest.approx(1.0)
    assert integrated_loudness(quiet_track(), SR) == pytest.approx(-30, abs=0.01)


@pytest.mark.parametrize("make", [loud_track, quiet_track])
def test_fit_music_hits_loudness_and_true_peak(make):
    out = fit_music(make(), SR, 5.0, loudness=-14.0, true_peak=-1.0, fade_in=0.3, fade_out=1.0)
    assert out.shape == (5 * SR, 2) and out.dtype == np.float32
    assert abs(integrated_loudness(out, SR) + 14.0) <= 0.5
    assert true_peak_db(out, SR) <= -1.0


def test_looping_gives_exact_length_and_smooth_seams():
    track = loud_track()[:SR]  # 1 s, looped to 3.3 s
    out = loop_to_length(track, int(3.3 * SR), SR)
    assert out.shape == (int(3.3 * SR), 2)
    # no click at the seams: sample-to-sample jumps stay like the track's own
    assert np.abs(np.diff(out, axis=0)).max() <= np.abs(np.diff(track, axis=0)).max() * 1.5 + 1e-6
    fitted = fit_music(track, SR, 3.3, fade_in=0.0, fade_out=0.0)
    assert fitted.shape == (round(3.3 * SR), 2)


def test_trim_is_exact():
    assert fit_music(loud_track(), SR, 1.25).shape == (60000, 2)


def test_fades_are_present():
    out = fit_music(loud_track(), SR, 4.0, fade_in=0.5, fade_out=1.0)

    def rms(a):
        return float(np.sqrt(np.mean(a**2)))

    middle = rms(out[2 * SR : int(2.5 * SR)])
    assert rms(out[: int(0.05 * SR)]) < 0.05 * middle  # starts from silence
    assert rms(out[-int(0.05 * SR) :]) < 0.05 * middle  # ends in silence
    assert rms(out[int(0.25 * SR) : int(0.3 * SR)]) < rms(out[int(0.55 * SR) : int(0.6 * SR)])
    assert abs(float(out[0, 0])) < 1e-6 and abs(float(out[-1, 0])) < 1e-6


def test_short_clip_falls_back_and_short_measure_is_clear():
    out = fit_music(loud_track(), SR, 0.25, fade_in=0.02, fade_out=0.05)
    assert out.shape == (12000, 2) and true_peak_db(out, SR) <= -1.0
    with pytest.raises(PostError, match="0.4 s"):
        integrated_loudness(out, SR)


def test_silent_track_is_an_error():
    with pytest.raises(PostError, match="silent"):
        fit_music(np.zeros((SR, 2)), SR, 2.0)


def _write_wav_with_ffmpeg(path, audio, channels):
    import imageio_ffmpeg

    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y",
            "-v",
            "error",
            "-f",
            "f32le",
            "-ar",
            "44100",
            "-ac",
            str(channels),
            "-i",
            "pipe:0",
            str(path),
        ],
        input=audio.astype("<f4").tobytes(),
        check=True,
    )


def test_load_audio_resamples_and_makes_stereo(tmp_path):
    t = np.arange(44100) / 44100
    mono = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    _write_wav_with_ffmpeg(tmp_path / "mono.wav", mono, 1)
    audio = load_audio(tmp_path / "mono.wav", 48000)
    assert audio.dtype == np.float32 and audio.shape[1] == 2
    assert abs(audio.shape[0] - 48000) <= 64
    assert np.allclose(audio[:, 0], audio[:, 1])
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.02)  # full level, not a -3 dB pan


def test_load_audio_reads_profile_tracks():
    tracks = sorted(PROFILES.glob("*/music/*.m4a"))
    assert tracks, "the demo profiles ship their music under brand_profiles/*/music"
    audio = load_audio(tracks[0], 48000)
    assert audio.shape[1] == 2 and audio.shape[0] > 48000


def test_load_audio_errors(tmp_path):
    with pytest.raises(AssetError, match="not found"):
        load_audio(tmp_path / "missing.wav", 48000)
    (tmp_path / "junk.mp3").write_bytes(b"\x00\x01 not audio at all" * 50)
    with pytest.raises(AssetError) as err:
        load_audio(tmp_path / "junk.mp3", 48000)
    assert err.value.file.endswith("junk.mp3")
    from brandstudio.encode import write_mp4

    silent_video = write_mp4(np.zeros((4, 16, 16, 3), np.uint8), 4, tmp_path / "v.mp4")
    with pytest.raises(AssetError, match="no audio stream"):
        load_audio(silent_video, 48000)


def test_load_audio_refuses_a_truncated_track_but_not_a_short_soundtrack(tmp_path):
    track = sorted(PROFILES.glob("*/music/*.m4a"))[0]
    data = track.read_bytes()
    (tmp_path / "cut.m4a").write_bytes(data[: len(data) // 3])  # a download cut short (moov first)
    with pytest.raises(AssetError, match=r"damaged or truncated: it decodes to [\d.]+ s of the [\d.]+ s"):
        load_audio(tmp_path / "cut.m4a", 48000)
    import subprocess

    from brandstudio.media import ffmpeg_exe

    # a 3 s clip whose soundtrack is 1 s long is fine: the audio stream says 1 s, the file 3 s
    short = tmp_path / "s.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=c=black:s=32x32:d=3", "-f", "lavfi",
                    "-i", "sine=f=440:d=1", "-c:v", "libx264", "-c:a", "aac", str(short)], check=True)  # fmt: skip
    assert abs(load_audio(short, 48000).shape[0] - 48000) < 2048
