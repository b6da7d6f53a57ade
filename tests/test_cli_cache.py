"""`brandstudio cache`: prewarm a profile's [[scenes]], ls, stats, prune; errors exit 2 cleanly."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from brandstudio.cli import app
from brandstudio.generation.cache import SceneCache, scene_key

runner = CliRunner()


def small(t: str) -> str:
    """A smaller generation canvas and fewer steps: the CLI path, quickly."""
    return (
        t.replace("width = 256", "width = 128")
        .replace("height = 144", "height = 80")
        .replace("steps = 4 ", "steps = 2 ")
    )


def test_prewarm_renders_each_scene_once(make_profile, tmp_path):
    profile, cache = make_profile(edit=small), str(tmp_path / "scenes")
    args = ["cache", "prewarm", str(profile), "--duration", "0.3", "--device", "cpu", "--cache", cache]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert [ln.split()[:2] for ln in lines] == [["miss", "pour-over"], ["miss", "beans-roasting"]]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert [ln.split()[:2] for ln in res.stdout.splitlines()] == [
        ["hit", "pour-over"],
        ["hit", "beans-roasting"],
    ]
    entries = json.loads(runner.invoke(app, ["cache", "ls", "--json", "--cache", cache]).stdout)
    assert sorted(e["prompt"][:11] for e in entries) == ["coffee bean", "slow-motion"]
    assert {tuple(e["shape"]) for e in entries} == {(5, 80, 128, 3), (5, 128, 80, 3)}


def test_ls_stats_prune(tmp_path):
    root = str(tmp_path / "scenes")
    cache = SceneCache(root)
    keys = [scene_key({"n": i}) for i in range(3)]
    for i, k in enumerate(keys):
        cache.put(k, np.full((5, 16, 16, 3), i, np.uint8), fields={"prompt": f"scene number {i}"})
    cache.get(keys[0])
    cache.get(scene_key({"n": 99}))

    res = runner.invoke(app, ["cache", "ls", "--cache", root])
    assert res.exit_code == 0 and all(k[:12] in res.stdout for k in keys) and "scene" in res.stdout
    stats = json.loads(runner.invoke(app, ["cache", "stats", "--json", "--cache", root]).stdout)
    assert (stats["entries"], stats["hits"], stats["misses"], stats["corrupt"]) == (3, 1, 1, 0)
    res = runner.invoke(app, ["cache", "stats", "--cache", root])
    assert res.exit_code == 0 and "3 scenes" in res.stdout and "1 hits, 1 misses" in res.stdout

    res = runner.invoke(app, ["cache", "prune", "--max-size", "1KB", "--cache", root])
    assert res.exit_code == 0, res.output
    assert "evicted 3 scenes" in res.stdout and cache.ls() == []


def test_cache_errors_exit_2_without_traceback(tmp_path):
    res = runner.invoke(app, ["cache", "prune", "--max-size", "2XB", "--cache", str(tmp_path)])
    assert res.exit_code == 2 and "RequestError" in res.output and "--max-size" in res.output
    res = runner.invoke(
        app, ["cache", "prewarm", str(tmp_path / "no-such-profile"), "--cache", str(tmp_path)]
    )
    assert res.exit_code == 2 and "ProfileNotFound" in res.output
    res = runner.invoke(app, ["cache", "stats", "--cache", "nosuchfs://bucket/scenes"])
    assert res.exit_code == 2 and "nosuchfs" in res.output and "Traceback" not in res.output
