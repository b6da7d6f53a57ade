"""Voice-over: the music ducks by `duck_db` while the voice speaks, and the mix meets the loudness target.

The synthetic "voice" is speech-like bursts of 2-3.2 kHz partials with a 5 Hz syllable rhythm;
the music is measured in the band under 600 Hz, where the voice has no energy. Through the
render path (CLI with --voiceover, Python without), the decoded MP4s are compared window by
window: with/without cancels the music's own dynamics and fades, leaving the duck.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from helpers import PROFILES, ebur128, ffmpeg_exe, probe
from typer.testing import CliRunner

from brandstudio import BrandStudio
from brandstudio.audio.music import integrated_loudness, load_audio, true_peak_db
from brandstudio.audio.voiceover import duck_gain, mix_voiceover, voice_activity
from brandstudio.cli import app
from brandstudio.errors import RequestError

SR = 48000
DUCK = 12.0


def voice(seconds: float, spans: list[tuple[float, float]], sr: int = SR) -> np.ndarray:
    """Speech-like bursts: 2.0/2.6/3.2 kHz partials, 5 Hz syllables, inside ``spans`` (seconds)."""
    t = np.arange(int(seconds * sr)) / sr
    tone = sum(a * np.sin(2 * np.pi * f * t) for f, a in ((2000, 0.2), (2600, 0.15), (3200, 0.1)))
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * 5 * t) ** 2
    gate = np.zeros_like(t)
    for a, b in spans:
        gate[(t >= a) & (t < b)] = 1.0
    ramp = int(0.01 * sr)  # 10 ms edges, like a word's onset
    gate = np.convolve(gate, np.ones(ramp) / ramp, mode="same")
    return tone * syllables * gate


def pad(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = 0.1 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.sin(2 * np.pi * 330 * t)
    return np.stack([x, x], axis=1)


def low_band_db(audio: np.ndarray, a: float, b: float, sr: int = SR) -> float:
    """RMS level (dB) under 600 Hz in [a, b) seconds: the music, not the voice."""
    from scipy.signal import butter, sosfiltfilt

    low = sosfiltfilt(butter(6, 600, fs=sr, output="sos"), np.asarray(audio, np.float64).mean(axis=1))
    seg = low[int(a * sr) : int(b * sr)]
    return 20 * np.log10(np.sqrt(np.mean(seg**2)) + 1e-12)


def test_voice_activity_and_duck_gain_timing():
    v = voice(4.0, [(1.0, 2.0)])
    active = voice_activity(v, SR)
    t = np.flatnonzero(active) / SR
    assert abs(t[0] - 1.0) < 0.02 and 2.0 < t[-1] < 2.3  # held open 0.25 s after the last word
    g = duck_gain(active, SR, duck_db=DUCK, attack=0.08, release=0.4)
    assert g[int(0.5 * SR)] == pytest.approx(0.0, abs=0.01)
    assert g[int(1.0 * SR)] < -0.9 * DUCK  # already down when the voice starts (look-ahead)
    assert g[int(0.9 * SR)] > -0.5  # ... but not long before
    assert g[int(1.5 * SR)] == pytest.approx(-DUCK, abs=0.05)
    assert -DUCK < g[int(2.45 * SR)] < -1.0  # releasing
    assert g[int(3.5 * SR)] > -0.2  # back


def test_mix_ducks_the_music_by_duck_db_and_hits_the_target():
    music = pad(5.0)
    v = voice(5.0, [(1.0, 2.2), (3.0, 3.6)])
    mix = mix_voiceover(music, v, SR, duck_db=DUCK, attack=0.08, release=0.4, loudness=-14.0, true_peak=-1.0)
    out = mix.audio
    assert out.shape == (5 * SR, 2) and out.dtype == np.float32
    inside = np.mean([low_band_db(out, 1.2, 2.0), low_band_db(out, 3.2, 3.5)])
    outside = np.mean([low_band_db(out, 0.2, 0.8), low_band_db(out, 4.5, 4.9)])
    assert outside - inside == pytest.approx(DUCK, abs=1.0)
    assert abs(integrated_loudness(out, SR) + 14.0) <= 0.5 and true_peak_db(out, SR) <= -1.0
    # without the duck the music would not drop (the measurement is not an artefact of the band)
    flat = mix_voiceover(music, v, SR, duck_db=0.0, loudness=-14.0, true_peak=-1.0).audio
    assert abs(low_band_db(flat, 1.2, 2.0) - low_band_db(flat, 0.2, 0.8)) < 0.5


def test_silent_voiceover_is_an_error():
    from brandstudio.errors import PostError

    with pytest.raises(PostError, match="silent"):
        mix_voiceover(pad(2.0), np.zeros(2 * SR), SR)


def write_wav(path, samples: np.ndarray, sr: int = 44100) -> None:
    """A mono 16-bit WAV, via the ffmpeg binary (a voice-over as a user would bring it)."""
    subprocess.run(
        [ffmpeg_exe(), "-y", "-v", "error", "-f", "f32le", "-ar", str(sr), "-ac", "1", "-i", "pipe:0",
         "-c:a", "pcm_s16le", str(path)],
        input=np.asarray(samples, "<f4").tobytes(), check=True,
    )  # fmt: skip


ARGS = {"aspect": "16:9", "duration": "3", "resolution": "64", "seed": "3"}
SPANS = [(1.0, 1.9)]


@pytest.fixture(scope="module")
def voiced_and_plain(tmp_path_factory):
    """The same clip rendered from the CLI with --voiceover --mood calm, and from Python without a voice.

    The footage is flat grey (a stand-in generator: the unit under test is the soundtrack) and the
    NSFW scan is off, so the two renders take a second or two each.
    """
    import shutil

    from fixed_generators import FlatGenerator

    base = tmp_path_factory.mktemp("vo")
    prof = base / "aurora"
    shutil.copytree(PROFILES / "aurora-coffee", prof)
    toml = prof / "brand.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace('nsfw = "block"', 'nsfw = "off"'), encoding="utf-8"
    )
    vo = base / "vo.wav"
    write_wav(vo, voice(3.0, SPANS, 44100)[: int(2.2 * 44100)], 44100)
    mp = pytest.MonkeyPatch()
    mp.setattr(BrandStudio, "generator", property(lambda self: FlatGenerator()))  # also for the CLI's studio
    try:
        res = CliRunner().invoke(
            app,
            ["render", str(prof), "product-hero", "-v", "product=Night Roast", "--mood", "calm",
             "--voiceover", str(vo), "-o", str(base / "voiced.mp4"), "--json",
             *[x for k, v in ARGS.items() for x in (f"--{k}", v)]],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        studio = BrandStudio(prof, output_dir=base)
        plain = studio.render(
            "product-hero", product="Night Roast", music_mood="calm", output=base / "plain.mp4",
            aspect="16:9", duration=3.0, resolution=64, seed=3,
        )  # fmt: skip
    finally:
        mp.undo()
    return base / "voiced.mp4", plain.path, res.stdout


def test_delivered_mp4_ducks_the_music_under_the_voice(voiced_and_plain):
    voiced, plain, _ = voiced_and_plain
    a, b = load_audio(voiced, SR), load_audio(plain, SR)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]

    def duck(t0: float, t1: float) -> float:  # how much lower the music is with the voice than without
        return low_band_db(b, t0, t1) - low_band_db(a, t0, t1)

    inside, outside = duck(1.2, 1.8), duck(0.45, 0.85)
    assert inside - outside == pytest.approx(DUCK, abs=1.5), (inside, outside)
    assert duck(2.6, 2.9) - outside < 3.0  # released after the voice


def test_delivered_mp4_meets_the_loudness_target(voiced_and_plain):
    voiced, plain, stdout = voiced_and_plain
    import json

    record = json.loads(stdout)
    assert record["music"]["voiceover"].endswith("vo.wav") and record["music"]["duck_db"] == DUCK
    assert record["music"]["track"] == "music/morning-roast.m4a"
    for clip in (voiced, plain):
        m = ebur128(clip)
        assert abs(m["integrated"] - (-14.0)) <= 0.5, m
        assert probe(clip)["audio_codec"] == "aac"
    assert record["qc"]["checks"]["loudness"]["status"] == "pass"


def test_bad_voiceovers_are_clear_errors_before_anything_runs(tmp_path):
    from fixed_generators import FlatGenerator

    gen = FlatGenerator()
    studio = BrandStudio(PROFILES / "aurora-coffee", output_dir=tmp_path / "out", generator=gen, cache=False)
    kw = {"product": "Night Roast", "aspect": "16:9", "duration": 2.0, "resolution": 64}
    long_vo = tmp_path / "long.wav"
    write_wav(long_vo, voice(3.0, [(0.2, 2.8)], 44100))
    with pytest.raises(RequestError) as err:
        studio.render("product-hero", voiceover=long_vo, **kw)
    assert err.value.field == "voiceover" and "longer than the 2 s clip" in str(err.value)
    assert "duration=3" in err.value.fix
    with pytest.raises(RequestError, match="the voice-over not found: .*nope.wav"):
        studio.render("product-hero", voiceover=tmp_path / "nope.wav", **kw)
    (tmp_path / "junk.wav").write_bytes(b"not audio" * 100)
    with pytest.raises(RequestError, match="could not read the voice-over"):
        studio.render("product-hero", voiceover=tmp_path / "junk.wav", **kw)
    assert gen.calls == 0 and not (tmp_path / "out").exists()
    res = CliRunner().invoke(
        app,
        [
            "render",
            str(PROFILES / "aurora-coffee"),
            "product-hero",
            "-v",
            "product=X",
            "--voiceover",
            str(tmp_path / "nope.wav"),
            "--output-dir",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 2 and "voiceover" in res.output and "Traceback" not in res.output
