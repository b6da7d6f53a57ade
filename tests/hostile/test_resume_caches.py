"""Hostile input: resume and caches that survive one bad byte.

- a campaign manifest whose last line a kill cut in the middle of a Chinese character (or any
  damaged line) is ignored: `campaign plan` and `campaign run` work and redo only that job;
- a damaged scene-cache entry of any kind (garbage, truncated, a header declaring a huge shape,
  wrong dtype, nonsense dimensions, deep JSON, a folder or a FIFO at its path) is dropped with a
  warning and regenerated, never a MemoryError, a traceback or a hang; the same for baked LUTs;
- the hidden partial files of a run killed with kill -9 are removed by the next run into the
  folder, and a live run's are not.

Renders use the tiny model at its smallest (4 frames, 64 px).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import PROFILES, REPO, probe

from brandstudio import BrandStudio
from brandstudio.campaign import load_campaign, plan, read_manifest, run
from brandstudio.encode import Mp4Writer, remove_partials
from brandstudio.generation.cache import MAGIC, SceneCache
from brandstudio.post.lut_cache import LutCache

AURORA = PROFILES / "aurora-coffee"
TINY = {"duration": 0.25, "resolution": 64, "aspect": "1:1"}
CLI = [sys.executable, "-m", "brandstudio.cli"]


def cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CLI, *args], cwd=REPO, capture_output=True, text=True, env=env, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return BrandStudio(AURORA, output_dir=tmp_path_factory.mktemp("renders"),
                       cache=tmp_path_factory.mktemp("scenes"))  # fmt: skip


# -- the manifest ----------------------------------------------------------------------------------


def tear_last_line_mid_character(manifest: Path) -> dict:
    """Cut the manifest's last line after the first byte of its first multi-byte character, as a
    kill in the middle of the write would; returns the record that line held."""
    data = manifest.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    last = data[start:]
    cut = next(i for i, b in enumerate(last) if b >= 0xC0)  # the lead byte of a UTF-8 sequence
    manifest.write_bytes(data[: start + cut + 1])
    with pytest.raises(UnicodeDecodeError):
        manifest.read_bytes()[start:].decode("utf-8")
    return json.loads(last)


def test_a_manifest_torn_mid_character_is_ignored_and_only_that_job_is_redone(tmp_path, studio):
    folder = tmp_path / "campaign"
    folder.mkdir()
    path = folder / "spring.toml"
    path.write_text(
        textwrap.dedent(f"""\
            [campaign]
            name = "spring"
            profile = "{AURORA.as_posix()}"
            template = "product-hero"
            output_dir = "renders/春季活动"
            [defaults]
            duration = 0.25
            resolution = 64
            aspect = "1:1"
            [matrix]
            product = ["Night Roast", "Day Roast"]
            """),
        encoding="utf-8",
    )
    c = load_campaign(path)
    first = run(c, studio=studio, quiet=True)
    assert first.exit_code == 0 and len(first.rendered) == 2
    torn = tear_last_line_mid_character(c.manifest_path)
    assert torn["status"] == "done"
    victim = torn["job"]

    # plan: the torn line is ignored; that job's last good record says it was started
    statuses = {p.job.id: p.status for p in plan(c)}
    assert statuses[victim] == "interrupted" and list(statuses.values()).count("done") == 1
    res = cli("campaign", "plan", str(path))
    assert res.returncode == 0, res.stderr
    assert "1 done" in res.stdout and "1 interrupted" in res.stdout

    # run (CLI): the clip was finished and audited before the "kill": recorded done, not rendered
    res = cli("campaign", "run", str(path), "--quiet", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    assert "(0 rendered now, 2 already done)" in res.stdout
    assert read_manifest(c.manifest_path)[victim]["recovered"] is True
    # the first record written after the torn line starts a line of its own (it is not lost)
    assert c.manifest_path.read_bytes().count(b"\n") == len(c.manifest_path.read_bytes().split(b"\n")) - 1

    # torn again, and the audit log's last line too: now that job (and only it) renders again
    tear_last_line_mid_character(c.manifest_path)
    assert tear_last_line_mid_character(c.audit_dir / "aurora-coffee.jsonl")["job"] == victim
    res = cli("campaign", "run", str(path), "--quiet", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    assert "(1 rendered now, 1 already done)" in res.stdout
    last = read_manifest(c.manifest_path)
    assert {r["status"] for r in last.values()} == {"done"} and len(last) == 2
    assert probe(Path(last[victim]["output"]))["video_codec"] == "h264"
    assert len(read_manifest(c.audit_dir / "aurora-coffee.jsonl")) == 2
    # and the same run through the API finds nothing left to do
    again = run(c, studio=studio, quiet=True)
    assert again.exit_code == 0 and not again.rendered and len(again.skipped) == 2


@pytest.mark.parametrize(
    "damage",
    [
        b"\x00" * 64,  # a crash that left zeros
        b"\xff\xfe not utf-8 at all\n",
        b"[" * 100_000 + b"\n",  # deeper than the JSON parser recurses
        b'{"job": ["not", "text"], "status": "done"}\n',
        b'{"job": "x", "status": "failed", "error": "a string, not a record"}\n',
    ],
    ids=["zeros", "not-utf8", "deep-json", "job-not-text", "error-not-a-record"],
)
def test_any_damaged_manifest_line_is_skipped(tmp_path, damage):
    manifest = tmp_path / "manifest.jsonl"
    good = {"job": "x", "status": "started", "time": "2026-01-01T00:00:00+00:00"}
    manifest.write_bytes(json.dumps(good).encode() + b"\n" + damage)
    assert read_manifest(manifest) == {"x": good}


# -- the scene cache ------------------------------------------------------------------------------


def header_of(data: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(data[12:16], "little")
    return json.loads(data[16 : 16 + n]), data[16 + n :]


def with_header(header: dict | bytes, pixels: bytes) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return MAGIC + (1).to_bytes(4, "little") + len(raw).to_bytes(4, "little") + raw + pixels


def corrupt(entry: Path, how: str) -> None:
    data = entry.read_bytes()
    header, pixels = header_of(data)
    if how == "garbage":
        entry.write_bytes(os.urandom(len(data)))
    elif how == "truncated":
        entry.write_bytes(data[: len(data) // 2])
    elif how == "huge-declared-shape":  # 3 * 10**18 bytes: bytearray(n) would raise MemoryError
        entry.write_bytes(with_header({**header, "shape": [10**6, 10**6, 10**6, 3]}, pixels))
    elif how == "huge-header-length":
        entry.write_bytes(data[:12] + (2**31).to_bytes(4, "little") + data[16:])
    elif how == "wrong-dtype":
        entry.write_bytes(with_header({**header, "dtype": "float32"}, pixels))
    elif how == "infinite-dimension":  # int(1e400) is an OverflowError
        raw = json.dumps({**header, "shape": "SHAPE"}).replace('"SHAPE"', "[1e400, 1, 1, 3]")
        entry.write_bytes(with_header(raw.encode(), pixels))
    elif how == "deep-json-header":  # json.loads raises RecursionError
        entry.write_bytes(with_header(b"[" * 200_000, pixels))
    elif how == "folder":
        entry.unlink()
        (entry / "inside").mkdir(parents=True)
    else:
        raise AssertionError(how)


DAMAGE = ["garbage", "truncated", "huge-declared-shape", "huge-header-length", "wrong-dtype",
          "infinite-dimension", "deep-json-header", "folder"]  # fmt: skip


@pytest.fixture(scope="module")
def cached_scene(studio, tmp_path_factory):
    """One clip rendered through the scene cache: (its entry file, the entry's bytes)."""
    out = tmp_path_factory.mktemp("first") / "hero.mp4"
    result = studio.render("product-hero", product="Night Roast", seed=9, output=out, **TINY)
    assert result.cache == "miss"
    entry = Path(studio.cache._store.path(f"{result.cache_key[:2]}/{result.cache_key}.scene"))
    return entry, entry.read_bytes()


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_scene_entry_is_dropped_and_regenerated(studio, cached_scene, tmp_path, caplog, how):
    entry, good = cached_scene
    if entry.is_dir():
        import shutil

        shutil.rmtree(entry)
    entry.write_bytes(good)
    corrupt(entry, how)
    with caplog.at_level(logging.WARNING, logger="brandstudio.generation.cache"):
        result = studio.render("product-hero", product="Night Roast", seed=9, output=tmp_path / "again.mp4", **TINY)
    assert result.cache == "miss" and probe(result.path)["video_codec"] == "h264"
    assert entry.is_file()  # replaced by a sound entry of the same scene
    (new_header, new_pixels), (old_header, old_pixels) = header_of(entry.read_bytes()), header_of(good)
    assert new_pixels == old_pixels and new_header["shape"] == old_header["shape"]
    assert any("damaged entry" in r.getMessage() and entry.name in r.getMessage() for r in caplog.records)
    again = studio.render("product-hero", product="Night Roast", seed=9, output=tmp_path / "third.mp4", **TINY)
    assert again.cache == "hit"


def test_a_fifo_at_a_scene_entry_is_dropped_without_waiting(tmp_path):
    cache = SceneCache(tmp_path)
    key = "ab" * 32
    frames = np.zeros((1, 16, 16, 3), np.uint8)
    cache.put(key, frames)
    entry = Path(cache._store.path(f"{key[:2]}/{key}.scene"))
    entry.unlink()
    os.mkfifo(entry)
    got = []
    reader = threading.Thread(target=lambda: got.append(cache.get(key)), daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "reading a FIFO entry blocked"
    assert got == [None] and not entry.exists()
    assert cache.stats()["corrupt"] == 1


def test_a_damaged_stats_file_never_breaks_the_cache(tmp_path):
    cache = SceneCache(tmp_path)
    (tmp_path / "stats.json").write_text('{"hits": "many", "misses": [1], "puts": -3}')
    key = "cd" * 32
    cache.put(key, np.zeros((1, 16, 16, 3), np.uint8))
    assert cache.get(key) is not None
    assert cache.stats()["hits"] == 1 and cache.stats()["puts"] == 1


def test_a_fifo_or_folder_at_a_lut_entry_is_dropped_without_waiting(tmp_path):
    cache = LutCache(tmp_path)
    fifo, folder = "ab" * 32, "cd" * 32
    os.mkfifo(tmp_path / f"{fifo}.bslut")
    (tmp_path / f"{folder}.bslut").mkdir()
    got = []
    reader = threading.Thread(target=lambda: got.extend([cache.get(fifo), cache.get(folder)]), daemon=True)
    with pytest.warns(UserWarning, match="will be baked again"):
        reader.start()
        reader.join(10)
    assert not reader.is_alive(), "reading a FIFO entry blocked"
    assert got == [None, None] and not list(tmp_path.iterdir())


# -- partial files of killed runs -------------------------------------------------------------------

KILLED_WRITER = """
import os, signal, sys
import numpy as np
from brandstudio.encode import Mp4Writer
w = Mp4Writer(sys.argv[1], 64, 64, 16, n_frames=32).open()
w.write(np.zeros((8, 64, 64, 3), np.uint8))
os.kill(os.getpid(), signal.SIGKILL)   # kill -9 in the middle of the encode
"""


def kill_a_writer(out: Path) -> Path:
    """A process that dies by SIGKILL while encoding ``out``; returns the partial it left."""
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(out)], cwd=REPO, timeout=120)
    assert proc.returncode == -9
    [partial] = out.parent.glob(f".{out.stem}.*.part.mp4")
    return partial


def test_the_next_render_removes_a_killed_runs_partials_and_keeps_a_live_ones(tmp_path):
    folder = tmp_path / "renders"
    folder.mkdir()
    killed = kill_a_writer(folder / "hero.mp4")
    stale_sidecar = folder / ".hero.ab12cd34.part.srt"  # a sidecar write killed an hour ago
    stale_sidecar.write_text("1\n")
    os.utime(stale_sidecar, (time.time() - 3600,) * 2)
    fresh_sidecar = folder / ".other.ef56gh78.part.vtt"  # maybe another run's, being written now
    fresh_sidecar.write_text("WEBVTT\n")
    not_ours = [folder / ".notes.part.txt", folder / "hero.part.mp4", folder / ".hero.mp4.swp"]
    for f in not_ours:
        f.write_text("keep me")
        os.utime(f, (0, 0))

    with Mp4Writer(folder / "live.mp4", 64, 64, 16, n_frames=8) as live:  # a run still encoding
        live.write(np.zeros((4, 64, 64, 3), np.uint8))
        [live_partial] = folder.glob(".live.*.part.mp4")
        os.utime(live_partial, (0, 0))  # however old it looks, its writer holds it

        res = cli("render", str(AURORA), "product-hero", "--var", "product=Night Roast", "--output",
                  str(folder / "hero.mp4"), "--duration", "0.25", "--resolution", "64", "--aspect", "1:1",
                  "--device", "cpu")  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert not killed.exists() and not stale_sidecar.exists()
        assert fresh_sidecar.exists() and live_partial.exists() and all(f.exists() for f in not_ours)
        live.write(np.zeros((4, 64, 64, 3), np.uint8))
    assert probe(folder / "live.mp4")["frames"] == 8 and probe(folder / "hero.mp4")["video_codec"] == "h264"
    assert not list(folder.glob(".live.*"))


def test_remove_partials_rules(tmp_path):
    now = time.time()
    names = {
        ".a.abcdefgh.part.mp4": False,  # an encoder temp nobody holds: its writer is dead
        ".b.abcdefgh.part.json": True,  # a sidecar temp written just now: kept for the grace period
        ".b.qc.abcdefgh.part.html": True,
        ".c.abcdefgh.tmp": True,
        ".d.unsigned.0123456789ab.mp4": True,  # a staging copy waiting to be signed
        ".e.abcdefgh.signed.mp4": True,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    removed = {p.name for p in remove_partials(tmp_path)}
    assert removed == {n for n, kept in names.items() if not kept}
    assert {p.name for p in remove_partials(tmp_path, owned_stems={"b"})} == {".b.abcdefgh.part.json", ".b.qc.abcdefgh.part.html"}
    assert {p.name for p in remove_partials(tmp_path, now=now + 3600)} == {
        ".c.abcdefgh.tmp", ".d.unsigned.0123456789ab.mp4", ".e.abcdefgh.signed.mp4"}  # fmt: skip
    assert not list(tmp_path.iterdir())
