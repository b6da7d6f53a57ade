"""Music: tracks by mood, by seed or in rotation; cut and looped between beats; through the render path.

The cut-point tests use a synthetic track with unmistakable beats (a 2 kHz click every 0.5 s
over a steady 221 Hz pad); the render tests decode the delivered MP4 and measure it.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from fixed_generators import FlatGenerator
from helpers import PROFILES, ebur128, probe

from brandstudio import BrandStudio, ProfileError, load_profile
from brandstudio.audio.music import cut_cost, fit_music, load_audio, plan_length, render_plan
from brandstudio.audio.tracks import select_track
from brandstudio.errors import RequestError
from brandstudio.profile.schema import AudioSection

SR = 48000
PERIOD, FIRST = 0.5, 0.1  # clicks at 0.1, 0.6, 1.1, ... s


def click_track(seconds: float) -> np.ndarray:
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = 0.2 * np.sin(2 * np.pi * 221.3 * t)  # the pad: its phase differs across any loop seam
    k = int(0.03 * SR)
    burst = 0.8 * np.exp(-np.arange(k) / SR / 0.005) * np.sin(2 * np.pi * 2000 * np.arange(k) / SR)
    for b in np.arange(FIRST, seconds, PERIOD):
        i = int(b * SR)
        x[i : i + k] += burst[: n - i]
    return np.stack([x, x], axis=1)


def beat_distance(sample: int) -> float:
    """Seconds from ``sample`` (a position in the click track) to the nearest click."""
    t = sample / SR
    return float(np.min(np.abs(np.arange(FIRST, t + PERIOD + 1, PERIOD) - t)))


def clicks(audio: np.ndarray) -> np.ndarray:
    """Times (s) of the clicks in ``audio``: peaks of the 1 kHz high-passed signal."""
    from scipy.signal import butter, find_peaks, sosfilt

    hp = sosfilt(butter(4, 1000, "highpass", fs=SR, output="sos"), audio[:, 0])
    peaks, _ = find_peaks(np.abs(hp), height=0.3, distance=int(0.2 * SR))
    return peaks / SR


# -- beat-free cut points ----------------------------------------------------------------


def test_cut_cost_is_low_between_beats_and_high_on_them():
    cost = cut_cost(click_track(3.0), SR, bpm=120)
    on = [cost[round((FIRST + k * PERIOD) / 0.005)] for k in range(1, 5)]
    between = [cost[round((FIRST + (k + 0.5) * PERIOD) / 0.005)] for k in range(1, 5)]
    assert min(on) > max(between)
    for k in range(1, 5):  # the cheapest cut between two clicks is half-way between them
        a, b = round((FIRST + k * PERIOD) / 0.005), round((FIRST + (k + 1) * PERIOD) / 0.005)
        assert abs((a + np.argmin(cost[a:b])) * 0.005 - (FIRST + (k + 0.5) * PERIOD)) < 0.03


@pytest.mark.parametrize("track_s, clip_s", [(3.1, 7.0), (2.3, 5.0), (10.0, 4.0), (10.0, 5.3)])
def test_loop_and_trim_points_fall_between_beats(track_s, clip_s):
    track = click_track(track_s)
    n = int(clip_s * SR)
    plan = plan_length(track, n, SR, bpm=120)
    points = {"start": plan.start, "end": plan.end}
    if track_s < clip_s:
        assert plan.loop_in is not None and plan.seams, "a short track must loop"
        points |= {"loop_in": plan.loop_in, "loop_out": plan.loop_out}
    for name, at in points.items():
        if name == "start" and at == 0:
            continue  # the track's own beginning is not a cut
        assert beat_distance(at) >= 0.15, (name, at / SR)
    out = render_plan(track, plan)
    assert out.shape == (n, 2)
    # the beat runs on across every seam: click to click is 0.5 s everywhere
    gaps = np.diff(clicks(out))
    assert len(gaps) >= int(clip_s / PERIOD) - 2
    assert np.abs(gaps - PERIOD).max() < 0.03, gaps.round(3)


def test_loop_seams_have_no_discontinuity():
    track = click_track(2.3)
    n = 6 * SR
    plan = plan_length(track, n, SR, bpm=120)
    out = render_plan(track, plan)
    own = 0.2 * 2 * np.pi * 221.3 / SR  # the pad's largest sample-to-sample step
    bound = 2.5 * own
    for q in plan.seams:
        seam = out[max(0, q - 2000) : q + 2000, 0]  # +-42 ms around the seam, no clicks there
        assert np.abs(np.diff(seam)).max() < bound
    # the same cut without the crossfade jumps far over the bound: the test can fail
    from dataclasses import replace

    hard = render_plan(track, replace(plan, crossfade=0))
    q = plan.seams[0]
    assert np.abs(np.diff(hard[q - 5 : q + 5, 0])).max() > 4 * bound


def test_fit_music_keeps_length_loudness_and_beat():
    bed = fit_music(
        click_track(2.3), SR, 5.0, loudness=-14.0, true_peak=-1.0, fade_in=0.0, fade_out=0.0, bpm=120
    )
    assert bed.shape == (5 * SR, 2)
    from brandstudio.audio.music import integrated_loudness, true_peak_db

    assert abs(integrated_loudness(bed, SR) + 14.0) <= 0.5 and true_peak_db(bed, SR) <= -1.0
    gaps = np.diff(clicks(bed / np.abs(bed).max()))
    assert np.abs(gaps - PERIOD).max() < 0.03


# -- choosing a track ---------------------------------------------------------------------


def section(**kw) -> AudioSection:
    tracks = [
        "music/plain.m4a",
        {"file": "music/calm-1.m4a", "mood": "calm", "bpm": 84},
        {"file": "music/up-1.m4a", "mood": "upbeat"},
        {"file": "music/calm-2.m4a", "mood": "calm"},
    ]
    return AudioSection(tracks=tracks, **kw)


def test_seed_selection_by_mood():
    a = section()
    assert a.moods == ("calm", "upbeat")
    assert [select_track(a, seed=s).index for s in range(5)] == [0, 1, 2, 3, 0]
    assert {select_track(a, seed=s, mood="calm").track.file for s in range(6)} == {
        "music/calm-1.m4a",
        "music/calm-2.m4a",
    }
    assert select_track(a, seed=7, mood=" Upbeat ").track.file == "music/up-1.m4a"
    assert select_track(section(default_mood="upbeat"), seed=0).mood == "upbeat"


def test_unknown_mood_lists_the_moods():
    with pytest.raises(RequestError) as err:
        select_track(section(), seed=0, mood="epic", profile_id="p")
    msg = str(err.value)
    assert "'epic'" in msg and "calm, upbeat" in msg and err.value.field == "audio.tracks"
    with pytest.raises(RequestError, match="no track has a mood"):
        select_track(AudioSection(tracks=["a.m4a"]), seed=0, mood="calm")
    with pytest.raises(RequestError, match="names none"):
        select_track(section(select="mood"), seed=0)
    with pytest.raises(ValueError, match="default_mood"):
        section(default_mood="epic")


def test_rotation_cycles_and_persists(tmp_path):
    a = section(select="rotate")
    got = [select_track(a, seed=0, state_dir=tmp_path, profile_id="p").index for _ in range(5)]
    assert got == [0, 1, 2, 3, 0]
    # per mood, and kept in a file (a new process continues where the last one stopped)
    assert [
        select_track(a, seed=0, mood="calm", state_dir=tmp_path, profile_id="p").index for _ in range(3)
    ] == [1, 3, 1]
    state = json.loads((tmp_path / "p.json").read_text())
    assert state["counters"] == {"*": 5, "calm": 3}
    assert select_track(a, seed=0, state_dir=tmp_path, profile_id="p").turn == 5
    # another profile has its own rotation
    assert select_track(a, seed=0, state_dir=tmp_path, profile_id="q").index == 0


def test_parallel_rotation_never_repeats_a_turn(tmp_path):
    a = section(select="rotate")
    turns: list[int] = []

    def work():
        for _ in range(5):
            turns.append(select_track(a, seed=0, state_dir=tmp_path, profile_id="p").turn)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(turns) == list(range(20))
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == ["p.json"]


def test_profile_tracks_with_moods_load_and_a_bad_default_is_a_profile_error(make_profile):
    prof = load_profile(PROFILES / "aurora-coffee")
    assert prof.spec.audio.moods == ("calm", "upbeat")
    assert prof.path("audio.tracks[1]").name == "bright-brew.m4a"
    bad = make_profile(edit=lambda t: t.replace('default_mood = "calm"', 'default_mood = "epic"'))
    with pytest.raises(ProfileError, match="default_mood"):
        load_profile(bad)
    missing = make_profile(name="m", edit=lambda t: t.replace("bright-brew.m4a", "nope.m4a"))
    with pytest.raises(ProfileError, match=r"audio\.tracks\[1\]"):
        load_profile(missing)


# -- the render path ----------------------------------------------------------------------

KW = {"product": "Night Roast", "aspect": "16:9", "duration": 3.0, "resolution": 96, "seed": 5}


def tempo(path) -> float:
    """The delivered soundtrack's tempo (bpm): the strongest period of its onset envelope, 60-160 bpm."""
    audio = load_audio(path, SR)[int(0.5 * SR) : int(2.0 * SR)]
    env = cut_cost(audio, SR, bpm=400)  # barely smoothed onset envelope, 5 ms steps
    env = env - env.mean()
    ac = np.correlate(env, env, "full")[len(env) - 1 :]
    lags = np.arange(len(ac)) * 0.005
    ok = (lags >= 60 / 160) & (lags <= 60 / 60)
    return 60 / lags[ok][np.argmax(ac[ok])]


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    """The same clip with the default (calm) music, with --mood upbeat, and with a template asking for upbeat."""
    import shutil

    base = tmp_path_factory.mktemp("moods")
    prof = base / "aurora"
    shutil.copytree(PROFILES / "aurora-coffee", prof)
    toml = prof / "brand.toml"  # the NSFW scan is not under test here (flat grey frames)
    toml.write_text(
        toml.read_text(encoding="utf-8").replace('nsfw = "block"', 'nsfw = "off"'), encoding="utf-8"
    )
    (prof / "templates").mkdir()
    tpl = (PROFILES.parent / "templates" / "product-hero.toml").read_text(encoding="utf-8")
    (prof / "templates" / "hero-upbeat.toml").write_text('music_mood = "upbeat"\n' + tpl, encoding="utf-8")
    studio = BrandStudio(prof, output_dir=base / "out", generator=FlatGenerator(), cache=False)
    return {
        "default": studio.render("product-hero", **KW),
        "upbeat": studio.render("product-hero", music_mood="upbeat", **KW),
        "template": studio.render("hero-upbeat", **KW),
        "override": studio.render("hero-upbeat", music_mood="calm", **KW),
    }


def test_render_picks_the_track_of_the_mood(renders):
    assert renders["default"].music["track"] == "music/morning-roast.m4a"
    assert renders["default"].music["mood"] == "calm"  # the profile's default_mood
    assert renders["upbeat"].music["track"] == "music/bright-brew.m4a"
    assert renders["template"].music["track"] == "music/bright-brew.m4a"
    assert renders["override"].music["track"] == "music/morning-roast.m4a"
    # another bed is another clip: the default output names differ
    assert len({r.path for r in renders.values()}) == 4
    # recorded in the MP4 too
    comment = json.loads(probe(renders["upbeat"].path)["metadata"]["comment"])
    assert comment["music"]["mood"] == "upbeat" and comment["music"]["bpm"] == 124


def test_delivered_soundtracks_are_the_tracks_at_the_target(renders):
    # the decoded audio has each track's tempo (84 vs 124 bpm, or their halves/doubles)
    up, calm = tempo(renders["upbeat"].path), tempo(renders["default"].path)
    assert min(abs(up - 124), abs(up - 62)) < 6, up
    assert min(abs(calm - 84), abs(calm - 168), abs(calm - 126)) < 6 or abs(calm - up) > 10, calm
    for r in renders.values():
        assert abs(ebur128(r.path)["integrated"] - (-14.0)) <= 0.5
        assert r.qc["checks"]["loudness"]["status"] == "pass"


def test_delivered_soundtracks_have_no_loudness_warning(renders):
    assert all(not any("LUFS" in w for w in r.warnings) for r in renders.values())


def test_an_unreachable_loudness_target_is_a_render_warning(make_profile, tmp_path):
    """-10 LUFS under a -9 dBTP ceiling cannot be met: the clip is delivered, and says so."""
    root = make_profile(edit=lambda t: t.replace("loudness = -14.0\ntrue_peak = -1.0", "loudness = -10.0\ntrue_peak = -9.0")
                        .replace('nsfw = "block"', 'nsfw = "off"'))  # fmt: skip
    r = BrandStudio(root, output_dir=tmp_path, generator=FlatGenerator(), cache=False).render("product-hero", **KW)
    measured = ebur128(r.path)["integrated"]
    assert measured < -11  # the limiter held the ceiling
    [warning] = [w for w in r.warnings if "LUFS" in w]
    assert "not the profile's -10 LUFS" in warning and "audio.true_peak" in warning


def test_unknown_mood_in_a_render_is_a_clear_error_before_anything_runs(tmp_path):
    gen = FlatGenerator()
    studio = BrandStudio(PROFILES / "aurora-coffee", output_dir=tmp_path, generator=gen, cache=False)
    with pytest.raises(RequestError) as err:
        studio.render("product-hero", music_mood="epic", **KW)
    assert "calm, upbeat" in str(err.value) and err.value.profile == "aurora-coffee"
    assert gen.calls == 0 and list(tmp_path.rglob("*")) == []  # nothing generated, nothing written
    no_audio = BrandStudio(PROFILES / "qinglan-tea", output_dir=tmp_path, generator=gen, cache=False)
    with pytest.raises(RequestError, match="no track has a mood"):
        no_audio.render("product-hero", music_mood="calm", **{**KW, "product": "龙井"})


def test_rotation_through_the_render_path(tmp_path, make_profile):
    import re

    def edit(text: str) -> str:
        text = text.replace('select = "seed"', 'select = "rotate"').replace('nsfw = "block"', 'nsfw = "off"')
        return re.sub(r"(?m)^default_mood = .*\n", "", text)

    prof = make_profile(edit=edit)
    studio = BrandStudio(prof, output_dir=tmp_path, generator=FlatGenerator(), cache=False)
    kw = {**KW, "duration": 1.0}
    tracks = [studio.render("product-hero", **kw).music["track"] for _ in range(2)]
    assert tracks == ["music/morning-roast.m4a", "music/bright-brew.m4a"]
    assert (tmp_path / ".brandstudio" / "music-rotation" / "aurora-coffee.json").is_file()
