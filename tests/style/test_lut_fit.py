"""`brandstudio lut fit`: a known grade recovered from graded pairs, smooth where no pixel says,
a transfer to reference stills baked, the .cube round trip, the profile updated on request, and
bad input refused clearly."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, probe
from PIL import Image

from brandstudio.errors import RequestError
from brandstudio.frames import srgb_to_lab
from brandstudio.post.grade import LUT, read_lut
from brandstudio.profile import load_profile
from brandstudio.style import apply_lut, fit_lut, fit_pairs, fit_references, write_cube
from brandstudio.style.lut_fit import identity_lattice

# the known grade and the procedural stills are the benchmark's own (bench/lut_fit.py): one source
_spec = importlib.util.spec_from_file_location("bench_lut_fit", REPO / "bench" / "lut_fit.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)
known_grade, stills, graded = bench.known_grade, bench.stills, bench.graded


def delta_e(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import colour

    return colour.delta_E(srgb_to_lab(a.reshape(-1, 3)), srgb_to_lab(b.reshape(-1, 3)), method="CIE 2000")


def test_a_known_grade_is_recovered_on_stills_it_never_saw():
    train = stills(6, seed=1)
    fit = fit_pairs([(s, graded(s)) for s in train], size=33)
    assert fit.held_out_delta_e["mean"] < 1.0 and fit.held_out_delta_e["p95"] < 2.5, fit.held_out_delta_e
    assert fit.before_delta_e["mean"] > 4  # the grade was a real change
    # new pictures, never part of the fit: their colours lie between the ones it saw
    for test in stills(3, seed=99):
        got = np.clip(np.rint(apply_lut(fit.lut, test) * 255), 0, 255).astype(np.uint8)
        de, untouched = delta_e(got, graded(test)), delta_e(test, graded(test))
        assert de.mean() < 1.5 and np.percentile(de, 95) < 4, (de.mean(), np.percentile(de, 95))
        assert de.mean() < untouched.mean() / 5


def test_the_table_is_smooth_where_no_pixel_constrains_it():
    # warm pictures only: the blue corner of the cube never appears in the pairs
    warm = [np.clip(s.astype(int) * [1.0, 0.8, 0.3], 0, 255).astype(np.uint8) for s in stills(4, seed=3)]
    fit = fit_pairs([(s, graded(s)) for s in warm], size=17)
    table = fit.lut.table
    assert np.isfinite(table).all() and table.min() >= 0 and table.max() <= 1
    second = np.abs(np.diff(table, n=2, axis=2)).max()  # along b, where the data is thinnest
    assert second < 0.1, second
    # past the bluest pixel the pairs show, more blue in still gives more blue out (no fold-back)
    assert (np.diff(table[8, 8, :, 2]) > -1e-3).all() and (np.diff(table[12, 6, :, 2]) > -1e-3).all()


def test_a_cube_written_reads_back_as_the_same_table(tmp_path):
    lut = LUT(known_grade(identity_lattice(9)).reshape(9, 9, 9, 3).astype(np.float32))
    back = read_lut(write_cube(lut, tmp_path / "g.cube", title="grade"))
    assert back.size == 9 and np.abs(back.table - lut.table).max() < 1e-5


@pytest.mark.parametrize("method", ["mkl", "reinhard"])
def test_the_transfer_to_references_is_baked(method):
    rng = np.random.default_rng(0)
    footage = [
        np.clip(rng.normal([110, 120, 140], 30, (64, 64, 3)), 0, 255).astype(np.uint8) for _ in range(3)
    ]
    refs = [np.clip(rng.normal([170, 120, 80], 20, (64, 64, 3)), 0, 255).astype(np.uint8) for _ in range(2)]
    fit = fit_references(footage, refs, method=method, size=17)
    moved = np.clip(np.rint(apply_lut(fit.lut, footage[0]) * 255), 0, 255).astype(np.uint8)
    lab = lambda imgs: srgb_to_lab(np.concatenate([i.reshape(-1, 3) for i in imgs])).mean(axis=0)  # noqa: E731
    before_gap = np.abs(lab(footage) - lab(refs)).max()
    after_gap = np.abs(lab([moved]) - lab(refs)).max()
    assert after_gap < 3 and before_gap > 15, (before_gap, after_gap)


def test_flat_footage_is_refused_rather_than_baked_into_a_clipping_lut():
    # an almost uniform sample clip: reaching the references' spread would need ~20x gain
    rng = np.random.default_rng(1)
    flat = [np.clip(rng.normal([120, 125, 130], 1.5, (64, 64, 3)), 0, 255).astype(np.uint8)]
    refs = [np.clip(rng.normal([170, 120, 80], 20, (64, 64, 3)), 0, 255).astype(np.uint8)]
    with pytest.raises(RequestError, match=r"almost one flat colour \(colour spread 2\.\d") as err:
        fit_references(flat, refs)
    assert err.value.field == "footage" and "--pairs" in err.value.fix


def write_pairs(folder, pictures) -> tuple:
    before, after = folder / "before", folder / "after"
    before.mkdir(parents=True)
    after.mkdir()
    for i, p in enumerate(pictures):
        Image.fromarray(p).save(before / f"shot{i}.png")
        Image.fromarray(graded(p)).save(after / f"shot{i}.png")
    return before, after


def test_cli_fits_writes_a_preview_and_applies_it_to_the_profile(make_profile, tmp_path):
    profile = make_profile("aurora-coffee")
    before, after = write_pairs(tmp_path / "grades", stills(3, seed=5))
    old = load_profile(profile).fingerprint
    proc = subprocess.run(
        [sys.executable, "-m", "brandstudio.cli", "lut", "fit", str(profile), "--pairs", str(before), str(after),
         "--size", "17", "--preview", str(tmp_path / "preview.png"), "--apply", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    cube = profile / "luts" / "aurora-coffee-fitted.cube"
    assert data["cube"] == str(cube) and cube.is_file() and data["applied"]
    assert data["held_out_delta_e"]["p95"] < 3
    loaded = load_profile(profile)
    assert loaded.spec.colour.lut == "luts/aurora-coffee-fitted.cube" and loaded.fingerprint != old
    assert "# " in (profile / "brand.toml").read_text()  # comments kept
    with Image.open(tmp_path / "preview.png") as im:
        assert im.size[0] == 3 * 384  # before | through the LUT | the colourist's grade
    # the profile renders with its new LUT
    from brandstudio import BrandStudio

    r = BrandStudio(profile, output_dir=tmp_path / "out").render("product-hero", product="Night Roast",
                                                                 duration=1.0, resolution=96)  # fmt: skip
    assert probe(r.path)["width"] > 0


def test_fit_to_references_from_the_models_own_footage(make_profile, tmp_path, scene_cache_dir):
    """Without --footage, the profile's [[scenes]] are generated (through the scene cache) and
    their colours moved to the reference stills' (profile/references, the default folder)."""
    profile = make_profile("aurora-coffee")
    refs = profile / "references"
    shutil.rmtree(refs)  # the demo profile's own stills are replaced by graded ones
    refs.mkdir()
    for i, s in enumerate(stills(2, seed=7)):
        # as soft as the demo LoRA's pale fields (a spread of ~16 levels): footage 4x flatter than
        # the references is refused (test_flat_footage_is_refused_rather_than_baked_into_a_clipping_lut)
        g = graded(s).astype(np.float32)
        soft = 0.25 * g + 0.75 * g.mean(axis=(0, 1))
        Image.fromarray(np.rint(soft).astype(np.uint8)).save(refs / f"r{i}.jpg")
    result = fit_lut(profile, method="reinhard", size=9, output=tmp_path / "r.cube")
    assert result.cube.is_file() and read_lut(result.cube).size == 9 and not result.applied
    assert result.fit.pixels > 0 and any(scene_cache_dir.rglob("*"))  # the scenes went through the cache


def test_bad_input_is_refused_clearly(make_profile, tmp_path):
    profile = make_profile("aurora-coffee")
    shutil.rmtree(profile / "references")  # a client without reference stills yet
    before, after = write_pairs(tmp_path / "g", stills(2))
    (after / "shot1.png").unlink()
    with pytest.raises(RequestError, match="no graded still .* for shot1.png"):
        fit_lut(profile, pairs=(before, after), output=tmp_path / "x.cube")
    Image.fromarray(stills(1, size=64)[0]).save(after / "shot1.png")
    with pytest.raises(
        RequestError, match="graded pair shot1: the before still is 96x96, the graded one 64x64"
    ):
        fit_lut(profile, pairs=(before, after), output=tmp_path / "x.cube")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RequestError, match="no stills in"):
        fit_lut(profile, pairs=(tmp_path / "empty", after), output=tmp_path / "x.cube")
    with pytest.raises(RequestError, match="nothing to fit"):
        fit_lut(profile, output=tmp_path / "x.cube")
    with pytest.raises(RequestError, match="cannot be baked"):
        fit_lut(profile, footage=[after / "shot0.png"], references=after, method="histogram")
    with pytest.raises(RequestError, match="must be inside the profile"):
        fit_lut(profile, pairs=(before, before), output=tmp_path / "x.cube", apply=True)
    assert not (tmp_path / "x.cube").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "brandstudio.cli", "lut", "fit", str(profile), "--pairs", str(tmp_path / "empty"),
         str(after)], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "no stills in" in proc.stderr and "Traceback" not in proc.stderr


def test_outputs_that_cannot_be_written_are_refused_before_any_work(make_profile, tmp_path):
    profile = make_profile("aurora-coffee")
    before, after = write_pairs(tmp_path / "g", stills(1, size=32))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RequestError, match="cannot write the LUT .*a-file is a file, not a folder") as info:
        fit_lut(profile, pairs=(before, after), size=9, output=blocker / "x.cube")
    assert info.value.field == "output"
    # the preview is checked too, before the table is written: neither appears
    with pytest.raises(RequestError, match="cannot write the preview") as info:
        fit_lut(
            profile, pairs=(before, after), size=9, output=tmp_path / "ok.cube", preview=blocker / "p.png"
        )
    assert info.value.field == "preview" and not (tmp_path / "ok.cube").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "brandstudio.cli", "lut", "fit", str(profile), "--pairs", str(before), str(after),
         "--size", "9", "-o", str(blocker / "x.cube")], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "is a file, not a folder" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
