"""Audio that lies about its length, or cannot be played at all.

A render decodes only as much of a music track as its clip needs (``load_audio(seconds=...)``,
:func:`~brandstudio.audio.music.music_seconds`): a 130 KB FLAC that decodes to twenty minutes,
or a WAV whose header claims ten hours, costs what a short track does. A profile whose music
cannot be played fails ``brandstudio profile validate`` (exit 2), naming the field and the fix,
and the check that finds it decodes only a little of each track.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import PROFILES, ffmpeg_exe

from brandstudio.audio import check as audio_check
from brandstudio.audio.music import fit_music, load_audio, music_seconds
from brandstudio.errors import AssetError, RequestError
from brandstudio.profile.loader import load_profile

TRACK = "music/bright-brew.m4a"  # audio.tracks[1] of aurora-coffee (mood "upbeat", 124 bpm)


def long_flac(path: Path, seconds: int) -> Path:
    """2 s of tone, then silence, ``seconds`` long: a few hundred KB that decode to ``seconds``."""
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y",
         "-f", "lavfi", "-i", "sine=frequency=220:sample_rate=8000:duration=2",
         "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono",
         "-filter_complex", "[0][1]concat=n=2:v=0:a=1", "-t", str(seconds), "-c:a", "flac", str(path)],
        check=True,
    )  # fmt: skip
    return path


def lying_wav(path: Path, *, claims: float, holds: float, sr: int = 48000) -> Path:
    """A 16-bit stereo WAV whose RIFF and data sizes claim ``claims`` seconds; it holds ``holds``."""
    t = np.arange(int(holds * sr)) / sr
    pcm = np.repeat((0.2 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")[:, None], 2, axis=1).tobytes()
    data = min(int(claims * sr) * 4, 0xFFFFFFFF - 36)
    header = (
        b"RIFF"
        + struct.pack("<I", data + 36)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, 2, sr, sr * 4, 4, 16)
    )
    path.write_bytes(header + b"data" + struct.pack("<I", data) + pcm)
    return path


# the render's audio stage in a fresh process: load the profile (its asset check) and fit its track
# to a 3 s clip, once on the demo profile (so every lazy import is done), then on the hostile one,
# measuring the peak of Python/numpy allocations (tracemalloc) and of the process (RSS) around it
_SOUNDTRACK = textwrap.dedent(
    """
    import json, resource, sys, time, tracemalloc
    from types import SimpleNamespace
    from brandstudio.audio import soundtrack
    from brandstudio.profile.loader import load_profile

    def render_audio(profile):
        brief = SimpleNamespace(seed=0, music_mood="upbeat", voiceover=None, duration=3.0)
        return soundtrack(brief, profile, duration=3.0, state_dir=sys.argv[3])

    render_audio(load_profile(sys.argv[1]))
    hostile = load_profile(sys.argv[2])  # its asset check decodes half a second at each end, no more
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0 = time.perf_counter()
    st = render_audio(hostile)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    print(json.dumps({"shape": list(st.audio.shape), "sr": st.sample_rate, "seconds": seconds,
                      "peak_mb": peak / 2**20,
                      "rss_grew_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024}))
    """
)


@pytest.mark.parametrize("kind", ["twenty-minute flac", "wav claiming ten hours"])
def test_a_track_longer_than_its_bytes_is_decoded_only_as_far_as_the_clip_needs(kind, make_profile, tmp_path):
    prof = make_profile(name="long")
    if kind.endswith("flac"):
        long_flac(prof / "music/long.flac", 1200)  # 20 min: 460 MB as 48 kHz stereo float
        track = "music/long.flac"
    else:
        lying_wav(prof / "music/long.wav", claims=10 * 3600, holds=1.0)
        track = "music/long.wav"
    (prof / "brand.toml").write_text((prof / "brand.toml").read_text().replace(TRACK, track))
    proc = subprocess.run(
        [sys.executable, "-c", _SOUNDTRACK, str(PROFILES / "aurora-coffee"), str(prof), str(tmp_path / "state")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["shape"] == [3 * got["sr"], 2]  # fitted (looped, for the 1 s WAV) to the clip
    # decoding what the file states would take 460 MB (FLAC) or 13 GB (WAV) as float samples
    assert got["peak_mb"] < 60 and got["rss_grew_mb"] < 100, got
    assert got["seconds"] < 20, got


def test_the_shortened_decode_fits_a_track_exactly_as_the_whole_one():
    path = PROFILES / "aurora-coffee" / TRACK  # 7.7 s; a 2 s clip at 124 bpm needs the first 4.7 s
    sr, bpm = 48000, 124
    whole = load_audio(path, sr)
    part = load_audio(path, sr, seconds=music_seconds(2.0, bpm))
    assert part.shape[0] < whole.shape[0]
    np.testing.assert_allclose(
        fit_music(part, sr, 2.0, bpm=bpm), fit_music(whole, sr, 2.0, bpm=bpm), atol=1e-4
    )


def test_load_audio_without_a_length_refuses_more_than_its_limit(tmp_path, monkeypatch):
    path = long_flac(tmp_path / "long.flac", 60)
    monkeypatch.setenv("BRANDSTUDIO_MAX_AUDIO_SECONDS", "10")
    with pytest.raises(AssetError) as e:
        load_audio(path, 8000)
    assert "longer than 10 s" in e.value.message and "BRANDSTUDIO_MAX_AUDIO_SECONDS" in e.value.fix
    assert load_audio(path, 8000, seconds=3.0).shape == (24000, 2)


def test_a_voice_over_running_far_past_the_clip_is_refused_without_decoding_it_whole(tmp_path):
    voice = long_flac(tmp_path / "vo.flac", 1200)
    profile = load_profile(PROFILES / "aurora-coffee")
    brief = SimpleNamespace(music_mood=None, voiceover=voice, duration=2.0)
    with pytest.raises(RequestError) as e:
        audio_check(brief, profile)
    assert "more than 30 s past the end" in e.value.message and e.value.field == "voiceover"


def _truncated(data: bytes) -> bytes:
    return data[: int(len(data) * 0.4)]


@pytest.mark.parametrize(
    ("case", "content"),
    [
        ("garbage bytes", lambda src: os.urandom(4000)),
        ("zero-length file", lambda src: b""),
        ("text file", lambda src: b"this is not music\n" * 40),
        ("truncated download", _truncated),
        ("header only", lambda src: src[: src.find(b"mdat") + 8]),
        (
            "garbage after the header",
            lambda src: src[: src.find(b"mdat") + 8] + bytes(len(src) - src.find(b"mdat") - 8),
        ),
    ],
)
def test_an_unplayable_music_file_fails_validation(case, content, make_profile):
    src = (PROFILES / "aurora-coffee" / TRACK).read_bytes()
    prof = make_profile(name="broken", files={TRACK: content(src)})
    proc = subprocess.run(
        [sys.executable, "-m", "brandstudio.cli", "profile", "validate", str(prof)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, (case, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    for what in ("aurora-coffee", TRACK, "audio.tracks[1]", "fix:"):
        assert what in proc.stderr, (case, proc.stderr)


def test_the_validation_check_decodes_little_of_a_long_track(make_profile):
    prof = make_profile(name="long")
    long_flac(prof / "music/long.flac", 1200)
    (prof / "brand.toml").write_text((prof / "brand.toml").read_text().replace(TRACK, "music/long.flac"))
    code = (
        "import resource, sys; from brandstudio.profile.loader import load_profile\n"
        "b = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; load_profile(sys.argv[1])\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - b) / 1024)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(prof)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) < 60  # the old check decoded all 20 minutes (150 MB at 16 kHz)
