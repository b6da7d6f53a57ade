"""The scene cache: exact round trips, content-addressed keys, integrity on read, concurrency, LRU,
fsspec stores, and the studio's generation step going through it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pytest
from fixed_generators import with_motion
from helpers import PROFILES, REPO, decode_frames

from brandstudio import BrandStudio, TemplateError
from brandstudio.generation.cache import MAGIC, SceneCache, parse_size, scene_key
from brandstudio.generation.tiny import make_tiny_lora


def clip(seed: int = 0, shape=(9, 32, 48, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def entry_file(cache: SceneCache, key: str):
    return cache._store.path(f"{key[:2]}/{key}.scene")


# -- the store -----------------------------------------------------------------------------------


def test_round_trip_is_exact_and_the_file_is_plain_data(tmp_path):
    cache = SceneCache(tmp_path)
    key = scene_key({"prompt": "pour-over", "seed": 11})
    frames = clip()
    assert cache.get(key) is None
    cache.put(key, frames, fields={"prompt": "pour-over", "seed": 11})
    got = cache.get(key)
    assert got.dtype == np.uint8 and got.shape == frames.shape and np.array_equal(got, frames)
    data = entry_file(cache, key).read_bytes()
    assert data.startswith(MAGIC)
    n = int.from_bytes(data[12:16], "little")
    header = json.loads(data[16 : 16 + n])  # a JSON header, then raw pixels: no pickle anywhere
    assert header["shape"] == list(frames.shape) and header["fields"]["seed"] == 11
    assert data[16 + n :] == frames.tobytes()
    assert not [p for p in tmp_path.rglob("*.tmp")]
    stats = cache.stats()
    assert (stats["entries"], stats["hits"], stats["misses"], stats["puts"]) == (1, 1, 1, 1)
    assert stats["bytes"] == len(data)
    [entry] = cache.ls()
    assert entry.key == key and entry.prompt == "pour-over" and entry.shape == frames.shape


def test_scene_key_is_canonical_and_sees_every_field():
    base = {
        "model_id": "tiny",
        "prompt": "tea garden",
        "seed": 21,
        "steps": 4,
        "flow_shift": 12.0,
        "loras": [{"name": "ink", "sha256": "ab", "weight_high": 0.8, "weight_low": 0.6}],
    }
    assert scene_key(base) == scene_key(dict(reversed(list(base.items()))))
    for change in (
        {"seed": 22},
        {"prompt": "tea garden "},
        {"steps": 5},
        {"flow_shift": 5.0},
        {"loras": [{"name": "ink", "sha256": "ab", "weight_high": 0.8, "weight_low": 0.7}]},
        {"loras": [{"name": "ink", "sha256": "cd", "weight_high": 0.8, "weight_low": 0.6}]},
    ):
        assert scene_key({**base, **change}) != scene_key(base), change
    with pytest.raises(ValueError):
        scene_key({"guidance": float("nan")})


def test_parse_size():
    assert parse_size("2GB") == 2 * 10**9 and parse_size("500MB") == 5 * 10**8
    assert parse_size("1.5G") == 15 * 10**8 and parse_size("2GiB") == 2 * 2**30 and parse_size("123") == 123
    for bad in ("", "2XB", "-1GB", "GB", "1iB"):
        with pytest.raises(ValueError):
            parse_size(bad)


@pytest.mark.parametrize("damage", ["flip-pixel", "flip-header", "truncate", "empty"])
def test_corrupt_entry_is_dropped_and_regenerated_never_served(tmp_path, damage):
    cache = SceneCache(tmp_path)
    key = scene_key({"damage": damage})
    frames = clip(1)
    cache.put(key, frames)
    path = entry_file(cache, key)
    data = bytearray(path.read_bytes())
    if damage == "flip-pixel":
        data[-100] ^= 0xFF
    elif damage == "flip-header":
        data[2] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) - 1000]
    else:
        data = bytearray()
    path.write_bytes(bytes(data))

    assert cache.get(key) is None
    assert not path.exists(), "a corrupt entry must be deleted"
    assert cache.stats()["corrupt"] == 1
    calls = []
    got, hit = cache.get_or_create(key, lambda: calls.append(1) or frames)
    assert not hit and calls == [1] and np.array_equal(got, frames)
    assert np.array_equal(cache.get(key), frames)


def test_get_or_create_calls_fn_once_and_stores_nothing_when_fn_fails(tmp_path):
    cache = SceneCache(tmp_path)
    key = scene_key({"x": 1})

    def fails():
        raise RuntimeError("model failed")

    with pytest.raises(RuntimeError):
        cache.get_or_create(key, fails)
    assert key not in cache and cache.ls() == []
    frames, hit = cache.get_or_create(key, lambda: clip(2))
    again, hit2 = cache.get_or_create(key, lambda: pytest.fail("fn called on a hit"))
    assert (hit, hit2) == (False, True) and np.array_equal(frames, again)
    with pytest.raises(ValueError, match="hex digest"):
        cache.get("../../etc/passwd")


_WORKER = textwrap.dedent(
    """
    import hashlib, os, sys, time
    import numpy as np
    from brandstudio.generation.cache import SceneCache

    root, key, log, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    def slow_generate():
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(1.5)
        return np.random.default_rng(seed).integers(0, 256, (9, 32, 48, 3), dtype=np.uint8)

    frames, hit = SceneCache(root).get_or_create(key, slow_generate)
    print(hashlib.sha256(frames.tobytes()).hexdigest(), hit)
    """
)


def test_two_processes_same_key_make_one_intact_entry(tmp_path):
    root, log = tmp_path / "scenes", tmp_path / "calls.log"
    key = scene_key({"race": 1})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # different seeds: if both computed, their results would differ
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(root), key, str(log), str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for seed in (1, 2)
    ]
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=60)
        assert p.returncode == 0, stderr
        digest, hit = stdout.split()
        results.append((digest, hit))
    assert len(log.read_text().split()) == 1, "the scene was generated twice"
    assert results[0][0] == results[1][0]
    assert sorted(h for _, h in results) == ["False", "True"]
    assert len(list(root.rglob("*.scene"))) == 1
    assert not list(root.rglob("*.tmp"))
    got = SceneCache(root).get(key)
    assert hashlib.sha256(got.tobytes()).hexdigest() == results[0][0]


def test_prune_evicts_least_recently_used_first(tmp_path):
    cache = SceneCache(tmp_path)
    keys = [scene_key({"n": i}) for i in range(3)]
    t0 = time.time() - 100
    for i, k in enumerate(keys):
        cache.put(k, clip(i))
        os.utime(entry_file(cache, k), (t0 + i, t0 + i))  # a, b, c made in that order
    assert cache.get(keys[0]) is not None  # a is now the most recently used
    sizes = {e.key: e.bytes for e in cache.ls()}
    evicted = cache.prune(sizes[keys[0]] + sizes[keys[2]])  # room for two of the three
    assert [e.key for e in evicted] == [keys[1]]
    assert keys[1] not in cache and keys[0] in cache and keys[2] in cache
    assert [e.key for e in cache.ls()] == [keys[0], keys[2]]
    assert [e.key for e in cache.prune("0B")] == [keys[2], keys[0]]
    assert cache.stats()["entries"] == 0 and cache.stats()["bytes"] == 0


def test_fsspec_memory_store(tmp_path):
    url = f"memory://bs-{uuid.uuid4().hex}/scenes"
    cache = SceneCache(url)
    assert cache.location == url
    key, frames = scene_key({"store": "memory"}), clip(3)
    got, hit = cache.get_or_create(key, lambda: frames, fields={"prompt": "tea garden"})
    assert not hit
    assert np.array_equal(SceneCache(url).get(key), frames)
    [entry] = cache.ls()
    assert entry.prompt == "tea garden" and entry.last_used >= entry.created
    assert cache.stats()["entries"] == 1 and cache.stats()["hits"] == 1
    # integrity on read there too
    fs, path = cache._store.fs, cache._store.path(f"{key[:2]}/{key}.scene")
    data = bytearray(fs.cat_file(path))
    data[-1] ^= 1
    fs.pipe_file(path, bytes(data))
    assert cache.get(key) is None and not fs.exists(path) and cache.stats()["corrupt"] == 1
    cache.put(key, frames)
    assert [e.key for e in cache.prune(0)] == [key] and cache.ls() == []


# -- the studio ----------------------------------------------------------------------------------


class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def aurora_gen():
    """The aurora-coffee generator (tiny model + its LoRA), loaded once for these tests."""
    return BrandStudio(PROFILES / "aurora-coffee", cache=False).generator


class KeyRecorder(SceneCache):
    """Records the key the studio asks for, then stops the render (nothing is generated)."""

    def __init__(self, location):
        super().__init__(location)
        self.keys = []

    def get_or_create(self, key, fn, *, fields=None):
        self.keys.append(key)
        raise _Stop


def key_of(profile, tmp_path, generator=None, **kw) -> str:
    rec = KeyRecorder(tmp_path / "keys")
    studio = BrandStudio(profile, output_dir=tmp_path / "out", cache=rec, generator=generator)
    kw = {"scene": "pour-over", "aspect": "16:9", "duration": 0.3, "resolution": 64, **kw}
    with pytest.raises(_Stop):
        studio.render("scene", **kw)
    return rec.keys[-1]


def test_key_changes_with_every_pixel_changing_setting(make_profile, tmp_path, aurora_gen):
    aurora, gen = PROFILES / "aurora-coffee", aurora_gen
    base = key_of(aurora, tmp_path, gen)
    assert key_of(aurora, tmp_path, gen) == base
    other_lora = make_tiny_lora(tmp_path / "other.safetensors", seed=999).read_bytes()
    variants = {
        "seed": key_of(aurora, tmp_path, gen, seed=12),
        "prompt": key_of(aurora, tmp_path, gen, scene="beans-roasting", aspect="16:9", seed=11),
        "duration (frames)": key_of(aurora, tmp_path, gen, duration=0.6),
        "portrait canvas": key_of(aurora, tmp_path, gen, aspect="9:16"),
    }
    edits = {
        "style prompt": ("warm morning light,", "cool evening light,"),
        "negative prompt": ('negative = "blurry,', 'negative = "grainy, blurry,'),
        "steps": ("steps = 4 ", "steps = 3 "),
        "flow shift": ("flow_shift = 3.0", "flow_shift = 8.0"),
        "guidance": ("guidance_low = 3.0", "guidance_low = 2.5"),
        "lora weight": ("weight_low = 0.6", "weight_low = 0.7"),
        "canvas size": ("height = 144", "height = 160"),
        "preset": ('preset = "quality"', 'preset = "balanced"'),  # "fast" needs [model.fast]
    }
    for i, (what, (a, b)) in enumerate(edits.items()):
        prof = make_profile(edit=lambda t, a=a, b=b: t.replace(a, b, 1), name=f"edit{i}")
        assert a in (PROFILES / "aurora-coffee" / "brand.toml").read_text(encoding="utf-8"), what
        # settings outside [[style.loras]] do not change the generator: share the loaded one
        variants[what] = key_of(prof, tmp_path, generator=None if what.startswith("lora") else gen)
    variants["lora file bytes"] = key_of(
        make_profile(files={"loras/aurora-film.safetensors": other_lora}, name="lora-bytes"), tmp_path
    )
    for what, key in variants.items():
        assert key != base, f"the key ignores {what}"
    assert len(set(variants.values())) == len(variants)


def test_key_ignores_post_only_settings(make_profile, tmp_path, aurora_gen):
    aurora, gen = PROFILES / "aurora-coffee", aurora_gen
    base = key_of(aurora, tmp_path)  # its own generator: the key does not depend on the instance
    assert key_of(aurora, tmp_path, gen, aspect="1:1") == base  # same landscape canvas
    assert key_of(aurora, tmp_path, gen, caption="Slow mornings.") == base
    assert key_of(aurora, tmp_path, gen, resolution=96) == base
    lut = make_profile(edit=lambda t: t.replace("strength = 0.85", "strength = 0.3"), name="lut")
    logo = make_profile(
        edit=lambda t: t.replace('position = "top-right"', 'position = "bottom-left"'), name="logo"
    )
    assert key_of(lut, tmp_path, gen) == base
    assert key_of(logo, tmp_path, gen) == base


@pytest.fixture
def small_aurora(make_profile):
    """aurora-coffee with a smaller generation canvas (128 x 80) and 2 steps, to keep generation quick."""
    return make_profile(
        edit=lambda t: (
            t.replace("width = 256", "width = 128")
            .replace("height = 144", "height = 80")
            .replace("steps = 4 ", "steps = 2 ")
        )
    )


class StubGenerator:
    """A generator without ``cache_identity``: the studio cannot key it, so it never caches it."""

    model_id = "stub"

    def generate(self, spec):
        return with_motion(np.full((spec.num_frames, spec.height, spec.width, 3), 128, np.uint8))


def test_render_twice_second_is_a_hit_with_identical_frames(tmp_path, small_aurora, aurora_gen):
    studio = BrandStudio(small_aurora, output_dir=tmp_path, cache=tmp_path / "scenes", generator=aurora_gen)
    kw = {"scene": "pour-over", "duration": 0.3, "resolution": 64}
    first = studio.render("scene", aspect="16:9", output=tmp_path / "a.mp4", **kw)
    second = studio.render("scene", aspect="16:9", output=tmp_path / "b.mp4", **kw)
    square = studio.render("scene", aspect="1:1", caption="Slow mornings.", output=tmp_path / "c.mp4", **kw)
    assert (first.cache, second.cache, square.cache) == ("miss", "hit", "hit")
    assert first.cache_key == second.cache_key == square.cache_key
    assert first.seed == 11 and "slow-motion pour-over" in first.prompt and "aurora film look" in first.prompt
    assert np.array_equal(decode_frames(first.path), decode_frames(second.path))
    assert second.timings["generation"] < first.timings["generation"] / 5
    assert studio.cache.stats()["entries"] == 1


def test_a_new_caption_reuses_the_footage_without_a_seed(tmp_path, small_aurora, aurora_gen):
    """No seed given: the default seed comes from the prompts, so changing only a caption
    (tagline, call to action) is a cache hit on the same footage; a new product is new footage."""
    studio = BrandStudio(small_aurora, output_dir=tmp_path, cache=tmp_path / "scenes", generator=aurora_gen)
    kw = {"product": "Night Roast", "duration": 0.3, "resolution": 64, "aspect": "16:9"}
    first = studio.render("product-hero", tagline="Roasted at dawn.", output=tmp_path / "a.mp4", **kw)
    recaptioned = studio.render("product-hero", tagline="Slow mornings.", cta="Order now", output=tmp_path / "b.mp4", **kw)
    assert (first.cache, recaptioned.cache) == ("miss", "hit") and first.seed == recaptioned.seed
    other = studio.render("product-hero", output=tmp_path / "c.mp4", **{**kw, "product": "Winter Blend"})
    assert other.cache == "miss" and other.seed != first.seed


def test_cache_off_and_generators_without_identity_are_not_cached(tmp_path):
    kw = {"scene": "pour-over", "duration": 0.3, "resolution": 64}
    studio = BrandStudio(
        PROFILES / "aurora-coffee", output_dir=tmp_path, cache=False, generator=StubGenerator()
    )
    assert studio.cache is None
    r = studio.render("scene", **kw)
    assert (r.cache, r.cache_key) == ("off", None)
    cached = BrandStudio(
        PROFILES / "aurora-coffee", output_dir=tmp_path, cache=tmp_path / "scenes", generator=StubGenerator()
    )
    r = cached.render("scene", **kw)
    assert (r.cache, r.cache_key) == ("off", None) and cached.cache.ls() == []


def test_unknown_scene_names_the_profile_scenes(tmp_path):
    studio = BrandStudio(PROFILES / "aurora-coffee", output_dir=tmp_path, cache=tmp_path / "scenes")
    with pytest.raises(TemplateError) as info:
        studio.render("scene", scene="latte-art")
    msg = str(info.value)
    assert "latte-art" in msg and "pour-over" in msg and "beans-roasting" in msg
    assert list(tmp_path.iterdir()) == []  # nothing generated, nothing cached


def test_prewarm_fills_the_cache_that_scene_renders_hit(tmp_path, small_aurora, aurora_gen):
    studio = BrandStudio(
        small_aurora, output_dir=tmp_path / "out", cache=tmp_path / "scenes", generator=aurora_gen
    )
    report = studio.prewarm(duration=0.3)
    assert [(r["scene"], r["cache"]) for r in report] == [("pour-over", "miss"), ("beans-roasting", "miss")]
    assert [r["cache"] for r in studio.prewarm(duration=0.3)] == ["hit", "hit"]
    assert not (tmp_path / "out").exists()  # generation only: no clip
    r = studio.render("scene", scene="beans-roasting", aspect="9:16", duration=0.3, resolution=64)
    assert r.cache == "hit" and r.cache_key == report[1]["key"]
