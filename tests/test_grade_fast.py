"""The fast grade paths: torch backend and the on-disk baked-table cache, and the .cube corners
(1D and 3D, sizes 2 and 256, DOMAIN_MIN/MAX, comments) read through colour-science.

Every result is compared with colour-science's own ``LUT.apply`` (tetrahedral unless said),
rounded to 8 bits: at most 1 level apart.
"""

from __future__ import annotations

import warnings

import colour
import numpy as np
import pytest
import torch
from colour.algebra import table_interpolation_tetrahedral, table_interpolation_trilinear

from brandstudio.post.grade import LUT, Grade, read_lut
from brandstudio.post.lut_cache import LutCache, bake_key


def _creative(size: int) -> np.ndarray:
    t = colour.LUT3D.linear_table(size)
    return np.clip(t**0.8 * np.array([1.08, 0.97, 0.85]) + 0.05 * np.sin(6 * t[..., ::-1]), 0, 1)


def _ref(px: np.ndarray, lut, strength: float = 1.0, interpolator=table_interpolation_tetrahedral):
    x = px.reshape(-1, 3).astype(np.float64) / 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = lut.apply(x, interpolator=interpolator) if isinstance(lut, colour.LUT3D) else lut.apply(x)
    y = (1 - strength) * x + strength * y
    return np.clip(np.rint(y * 255), 0, 255).reshape(px.shape)


PX = np.random.default_rng(5).integers(0, 256, (2, 24, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "method, interp",
    [("tetrahedral", table_interpolation_tetrahedral), ("trilinear", table_interpolation_trilinear)],
)
@pytest.mark.parametrize("strength", [1.0, 0.55])
def test_torch_backend_matches_colour_science(tmp_path, method, interp, strength):
    ref_lut = colour.LUT3D(_creative(17), name="c")
    colour.io.write_LUT(ref_lut, str(tmp_path / "c.cube"))
    grade = Grade(read_lut(tmp_path / "c.cube"), strength, method, backend="torch", device="cpu")
    out = grade.apply(PX)
    assert out.dtype == np.uint8 and out.shape == PX.shape
    assert np.abs(out.astype(int) - _ref(PX, ref_lut, strength, interp)).max() <= 1
    # and the two backends agree with each other
    numpy_out = Grade(grade.lut, strength, method, backend="numpy", cache=False).apply(PX)
    assert np.abs(out.astype(int) - numpy_out).max() <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_backend_matches_cpu():
    lut = LUT(table=_creative(33))
    cpu = Grade(lut, 0.8, backend="torch", device="cpu").apply(PX)
    gpu = Grade(lut, 0.8, backend="torch", device="cuda").apply(PX)
    assert np.abs(cpu.astype(int) - gpu).max() <= 1


def test_auto_backend_is_numpy_without_cuda():
    grade = Grade(LUT.identity(3), backend="auto")
    assert grade._use_torch() is torch.cuda.is_available()
    with pytest.raises(ValueError, match="numpy"):
        Grade(LUT.identity(3), backend="opencl")


CUBE_WITH_COMMENTS = """# Created by a colourist's tool
TITLE "tiny warm"
# a comment between keywords
DOMAIN_MIN 0.0 0.0 0.0
DOMAIN_MAX 2.0 2.0 2.0
LUT_3D_SIZE 2

# black, then red varies fastest
0.0 0.0 0.0
1.0 0.0 0.0
0.0 0.9 0.0
1.0 0.9 0.0
0.0 0.0 0.8
1.0 0.0 0.8
0.0 0.9 0.8
1.0 0.9 0.8
"""


def test_size_2_cube_with_comments_and_domain(tmp_path):
    path = tmp_path / "tiny.cube"
    path.write_text(CUBE_WITH_COMMENTS)
    lut = read_lut(path)
    assert lut.dimensions == 3 and lut.size == 2
    assert np.allclose(lut.domain, [[0, 0, 0], [2, 2, 2]])
    ref = colour.io.read_LUT(str(path))
    for backend in ("numpy", "torch"):
        out = Grade(lut, backend=backend, device="cpu", cache=False).apply(PX)
        assert np.abs(out.astype(int) - _ref(PX, ref)).max() <= 1
    # domain [0, 2]: full white lands half-way up the table
    white = Grade(lut, cache=False).apply(np.full((1, 1, 1, 3), 255, np.uint8))[0, 0, 0]
    assert np.abs(white.astype(int) - np.rint(np.array([0.5, 0.45, 0.4]) * 255)).max() <= 1


@pytest.mark.parametrize("size", [2, 256])
def test_1d_luts_sizes_2_and_256(tmp_path, size):
    x = np.linspace(0, 1, size)
    table = np.stack([x**2, 1 - x, np.sqrt(x)], axis=-1)
    colour.io.write_LUT(colour.LUT3x1D(table, comments=["a 1D curve"]), str(tmp_path / "curve.cube"))
    lut = read_lut(tmp_path / "curve.cube")
    assert lut.dimensions == 1 and lut.size == size
    ref = colour.io.read_LUT(str(tmp_path / "curve.cube"))
    for backend in ("numpy", "torch"):
        out = Grade(lut, strength=0.7, backend=backend, device="cpu", cache=False).apply(PX)
        assert np.abs(out.astype(int) - _ref(PX, ref, 0.7)).max() <= 1


@pytest.mark.parametrize("size", [17, 64, 65])
def test_3d_cube_files_of_common_sizes(tmp_path, size):
    """17, 33 (the profiles') and 65 are what grading tools export; 64 is an even size. Read
    from the file, applied directly and through the baked table: within 1 level of colour-science."""
    path = tmp_path / f"look{size}.cube"
    colour.io.write_LUT(colour.LUT3D(_creative(size), name=f"look {size}", comments=["a look"]), str(path))
    lut = read_lut(path)
    assert lut.dimensions == 3 and lut.size == size
    ref = _ref(PX, colour.io.read_LUT(str(path)), 0.6)
    g = Grade(lut, strength=0.6, backend="numpy", cache=False)
    assert np.abs(g.apply(PX).astype(int) - ref).max() <= 1  # direct kernel (a small clip)
    from brandstudio.post.grade import _lookup

    assert np.abs(_lookup(g.baked(), PX).astype(int) - ref).max() <= 1


def test_shaper_plus_cube(tmp_path):
    # a 1D shaper in front of a 3D cube, both in one .cube file (colour reads it as a LUTSequence)
    shaper = colour.LUT3x1D(np.stack([np.linspace(0, 1, 256) ** 0.6] * 3, -1))
    cube = colour.LUT3D(_creative(33))
    seq = colour.LUTSequence(shaper, cube)
    colour.io.write_LUT(seq, str(tmp_path / "s.cube"))
    lut = read_lut(tmp_path / "s.cube")
    assert lut.shaper is not None and lut.size == 33
    x = PX.reshape(-1, 3).astype(np.float64) / 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = cube.apply(shaper.apply(x), interpolator=table_interpolation_tetrahedral)
    ref = np.clip(np.rint(y * 255), 0, 255).reshape(PX.shape)
    for backend in ("numpy", "torch"):
        out = Grade(lut, backend=backend, device="cpu", cache=False).apply(PX)
        assert np.abs(out.astype(int) - ref).max() <= 1


def test_baked_table_is_cached_on_disk_and_verified(tmp_path, monkeypatch):
    lut = LUT(table=_creative(9), name="warm")
    cache = LutCache(tmp_path / "luts")
    first = Grade(lut, strength=0.8, cache=cache)
    direct = first.apply(PX)  # small input, nothing cached yet: the direct kernel
    table = first.baked()  # bakes once (a few seconds) and stores it
    files = list((tmp_path / "luts").iterdir())
    assert [f.name for f in files] == [bake_key(lut, 0.8, "tetrahedral") + ".bslut"]
    assert files[0].stat().st_size == 40 + 256**3 * 3

    # a fresh Grade (a new render, or another process) reads it instead of baking
    def no_bake(self, *pixels):
        raise AssertionError("baked (or graded directly) again although the table is on disk")

    monkeypatch.setattr(Grade, "_bake", no_bake)
    monkeypatch.setattr(Grade, "_grade_uint8", no_bake)
    again = Grade(LUT(table=_creative(9), name="same content, other name"), strength=0.8, cache=cache)
    assert np.array_equal(again.apply(PX), direct)
    assert np.array_equal(again.baked(), table)

    # another strength or method is another key
    assert Grade(lut, strength=0.7, cache=cache).cached_table() is None
    assert Grade(lut, strength=0.8, method="trilinear", cache=cache).cached_table() is None

    # a damaged entry is refused (with a warning), deleted, and reported as missing
    raw = bytearray(files[0].read_bytes())
    raw[1000] ^= 0xFF
    files[0].write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="checksum"):
        assert Grade(lut, strength=0.8, cache=cache).cached_table() is None
    assert not files[0].exists()
    files[0].write_bytes(bytes(raw[:5000]))  # truncated
    with pytest.warns(UserWarning, match="size"):
        assert Grade(lut, strength=0.8, cache=cache).cached_table() is None
    assert not any(p.suffix == ".tmp" for p in (tmp_path / "luts").iterdir())


def test_cache_off_and_unwritable_folder(tmp_path):
    lut = LUT(table=_creative(5))
    assert Grade(lut, cache=False)._disk() is None
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="could not store"):
        assert LutCache(blocker / "luts").put("ab" * 32, np.zeros((256**3, 3), np.uint8)) is False


def test_table_lookup_reads_any_layout_and_the_last_pixel():
    """The baked table's lookup (a 3-byte-stride view of the pixel bytes) on contiguous frames,
    a cropped (non-contiguous) view, a single pixel, and frames whose last pixel differs from
    all others: the same pixels as the direct kernel."""
    from brandstudio.post.grade import _lookup

    g = Grade(LUT(table=_creative(9)), strength=0.9, cache=False)
    table = g.baked()
    big = np.random.default_rng(2).integers(0, 256, (3, 20, 30, 3), dtype=np.uint8)
    big[-1, -1, -1] = (255, 0, 7)
    for frames in (big, big[:, 2:17, 5:21], big[:1, :1, :1], big[-1, -1:, -1:]):
        direct = g._grade_uint8(np.ascontiguousarray(frames).reshape(-1, 3)).reshape(frames.shape)
        assert np.array_equal(_lookup(table, frames), direct)


def test_read_lut_parses_a_file_once_and_again_when_it_changes(tmp_path):
    path = tmp_path / "x.cube"
    colour.io.write_LUT(colour.LUT3D(_creative(5), name="x"), str(path))
    first = read_lut(path)
    assert read_lut(path) is first  # the profile loader and every render share one parse
    assert not first.table.flags.writeable and not first.domain.flags.writeable
    assert repr(first) == "LUT(name='x', 5-point cube, domain=[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])"
    colour.io.write_LUT(colour.LUT3D(_creative(7), name="x"), str(path))  # edited: new size, new mtime
    again = read_lut(path)
    assert again is not first and again.size == 7


def test_a_render_bakes_its_table_during_generation(make_profile, tmp_path, monkeypatch):
    """A render whose clip will use the baked table starts the bake (or the disk read) on a
    background thread before generation; the post stage waits for it instead of baking again."""
    import threading

    import brandstudio.post.grade as grade_mod
    from brandstudio import BrandStudio

    monkeypatch.setattr(grade_mod, "_BAKE_THRESHOLD", 1)  # the tiny clip bakes, as a 720p one would
    bakes: list[str] = []
    real = Grade._bake

    def spy(self):
        bakes.append(threading.current_thread().name)
        return real(self)

    monkeypatch.setattr(Grade, "_bake", spy)
    root = make_profile(edit=lambda t: t.replace("strength = 0.85", "strength = 0.8125"))  # a fresh key
    studio = BrandStudio(root, output_dir=tmp_path, cache=False)
    r = studio.render("product-hero", product="Night Roast", duration=0.5, resolution=64, seed=1)
    assert bakes == ["brandstudio-lut-bake"]
    c = studio.profile.spec.colour
    key = bake_key(read_lut(studio.profile.path("colour.lut")), c.strength, c.interpolation)
    assert LutCache().get(key) is not None  # stored for the next process
    studio.render("product-hero", product="Night Roast", duration=0.5, resolution=64, seed=2)
    assert bakes == ["brandstudio-lut-bake"]  # the studio kept its table: no second bake
    assert r.path.is_file()


def test_stale_temporary_files_are_pruned(tmp_path):
    import os
    import time

    cache = LutCache(tmp_path)
    old, fresh = tmp_path / ".abc-old.tmp", tmp_path / ".abc-new.tmp"
    old.write_bytes(b"half a table")
    fresh.write_bytes(b"being written now")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert cache.put("ab" * 32, np.zeros((256**3, 3), np.uint8))
    assert not old.exists() and fresh.exists()
