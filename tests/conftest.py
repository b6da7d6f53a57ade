"""Shared fixtures: a private scene cache, copies of the demo profiles to break, and media probes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import PROFILES


@pytest.fixture(scope="session", autouse=True)
def scene_cache_dir(tmp_path_factory):
    """A per-session scene cache (BRANDSTUDIO_SCENE_CACHE), never the user's ~/.cache/brandstudio/scenes."""
    path = tmp_path_factory.mktemp("scene-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("BRANDSTUDIO_SCENE_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="session", autouse=True)
def lut_cache_dir(tmp_path_factory):
    """A per-session baked-LUT cache (BRANDSTUDIO_LUT_CACHE), never the user's ~/.cache/brandstudio/luts."""
    path = tmp_path_factory.mktemp("lut-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("BRANDSTUDIO_LUT_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="session", autouse=True)
def weights_cache_dir(tmp_path_factory):
    """A per-session cache of weight files found finite (BRANDSTUDIO_WEIGHTS_CACHE), never the user's."""
    path = tmp_path_factory.mktemp("weights-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("BRANDSTUDIO_WEIGHTS_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="session", autouse=True)
def no_machine_clip_model():
    """A developer's BRANDSTUDIO_CLIP_MODEL would add QC checks to every report; tests that want
    a CLIP model set it themselves."""
    mp = pytest.MonkeyPatch()
    mp.delenv("BRANDSTUDIO_CLIP_MODEL", raising=False)
    yield
    mp.undo()


@pytest.fixture
def make_profile(tmp_path):
    """Copy a demo profile into tmp_path, optionally editing brand.toml and writing files.

    ``make_profile("aurora-coffee", edit=lambda t: t.replace(a, b), files={"x.cube": b"..."})``
    """

    def _make(base: str = "aurora-coffee", *, edit=None, files=None, name: str | None = None) -> Path:
        # under profiles/: a render's default output folder (<output_dir>/<profile id>/) with
        # output_dir=tmp_path must not be the profile itself, which renders may never write into
        dest = tmp_path / "profiles" / (name or base)
        shutil.copytree(PROFILES / base, dest)
        toml = dest / "brand.toml"
        if edit is not None:
            text = edit(toml.read_text(encoding="utf-8"))
            toml.write_text(text, encoding="utf-8")
        for rel, content in (files or {}).items():
            p = dest / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content if isinstance(content, bytes) else content.encode())
        return dest

    return _make


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance for one test module, with two logical GPUs (one actor each, as on a
    two-GPU node); skipped where Ray is not installed."""
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        num_gpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=80 * 1024 * 1024,
        logging_level="ERROR",
    )
    yield ray
    ray.shutdown()
