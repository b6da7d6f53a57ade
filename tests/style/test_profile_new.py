"""`brandstudio profile new`: a complete, valid profile from a logo and stills, that renders; the
palette taken from the pictures; the font checked against the language; nothing left on failure."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from helpers import PROFILES, probe
from PIL import Image

from brandstudio import BrandStudio
from brandstudio.errors import RequestError
from brandstudio.frames import srgb_to_lab
from brandstudio.profile import load_profile
from brandstudio.style import extract_palette, new_profile

TEAL, CORAL, CREAM = (20, 110, 120), (235, 110, 90), (245, 235, 215)


def brand_material(folder):
    """A logo (coral mark on transparency) and three stills in teal, coral and cream."""
    folder.mkdir(parents=True, exist_ok=True)
    logo = np.zeros((64, 128, 4), np.uint8)
    logo[16:48, 16:112] = (*CORAL, 255)
    Image.fromarray(logo).save(folder / "logo.png")
    refs = folder / "stills"
    refs.mkdir()
    rng = np.random.default_rng(0)
    for i, (a, b) in enumerate([(TEAL, CREAM), (CREAM, CORAL), (TEAL, CORAL)]):
        img = np.empty((80, 120, 3))
        img[:, :60], img[:, 60:] = a, b
        img += rng.normal(0, 3, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(refs / f"still{i}.png")
    return folder / "logo.png", refs


def delta_e(hex_colour: str, rgb) -> float:
    import colour

    got = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)], np.uint8)
    return float(colour.delta_E(srgb_to_lab(got), srgb_to_lab(np.array(rgb, np.uint8)), method="CIE 2000"))


def test_the_palette_comes_from_the_logo_and_stills():
    logo, refs = brand_material_arrays()
    palette = extract_palette([logo, *refs])
    for colour in (TEAL, CORAL, CREAM):
        assert min(delta_e(h, colour) for h in palette) < 3, (colour, palette)
    assert len(palette) == 3  # the noise in each colour is merged, not a swatch of its own


def brand_material_arrays():
    logo = np.zeros((16, 32, 4), np.uint8)
    logo[4:12, 4:28] = (*CORAL, 255)
    rng = np.random.default_rng(1)
    refs = [np.clip(np.array(c, float) + rng.normal(0, 3, (40, 40, 3)), 0, 255).astype(np.uint8) for c in (TEAL, CREAM)]
    return logo, refs


def test_cli_makes_a_profile_that_validates_and_renders(tmp_path):
    logo, refs = brand_material(tmp_path / "material")
    dest = tmp_path / "profiles" / "harbour-tea"
    proc = subprocess.run(
        [sys.executable, "-m", "brandstudio.cli", "profile", "new", str(dest), "--name", "Harbour Tea",
         "--logo", str(logo), "--references", str(refs), "--competitors", "Brewster,Teavana"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "created" in proc.stdout and "next steps" in proc.stdout and "lut fit" in proc.stdout
    profile = load_profile(dest)
    assert profile.id == "harbour-tea" and profile.spec.brand.name == "Harbour Tea"
    assert [str(c) for c in profile.spec.safety.competitors] == ["Brewster", "Teavana"]
    assert sorted(p.name for p in (dest / "references").iterdir()) == ["still0.png", "still1.png", "still2.png"]
    assert (dest / "templates" / "product-hero.toml").is_file()
    assert "# " in (dest / "brand.toml").read_text()  # commented
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]  # the build folder is gone
    # the next step it prints works as written: a LUT fitted from the model's own footage of the
    # profile's scene to the references, applied (the fit to references from the CLI, no --pairs)
    proc = subprocess.run(
        [sys.executable, "-m", "brandstudio.cli", "lut", "fit", str(dest), "--references", str(dest / "references"),
         "--size", "9", "--apply"], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert load_profile(dest).spec.colour.lut == "luts/harbour-tea-fitted.cube"
    r = BrandStudio(dest, output_dir=tmp_path / "out").render("product-hero", product="Jasmine", duration=1.0,
                                                                resolution=96)  # fmt: skip
    assert probe(r.path)["audio_codec"] == "aac"


def test_a_font_without_the_languages_glyphs_is_refused_and_nothing_is_left(tmp_path):
    logo, refs = brand_material(tmp_path / "material")
    dest = tmp_path / "profiles" / "qing"
    with pytest.raises(RequestError, match="has no glyphs for") as info:
        new_profile(dest, name="青岚", logo=logo, references=refs, language="zh", region="cn",
                    font=PROFILES / "aurora-coffee" / "fonts" / "NotoSerif-Bold.ttf")  # fmt: skip
    assert info.value.field == "font" and "zh" in str(info.value)
    assert not dest.exists()
    assert not [p for p in (tmp_path / "profiles").glob(".*")]  # no half-built profile left beside it
    made = new_profile(dest, name="青岚", logo=logo, references=refs, language="zh", region="cn", profile_id="qing",
                       font=PROFILES / "qinglan-tea" / "fonts" / "NotoSansSC-Bold.otf", palette=["#1F4E5F"])  # fmt: skip
    assert made.profile.spec.brand.language == "zh" and made.palette == ("#1F4E5F",) and not made.palette_extracted


def test_an_existing_folder_is_never_overwritten(tmp_path):
    logo, refs = brand_material(tmp_path / "material")
    dest = tmp_path / "taken"
    dest.mkdir()
    (dest / "notes.txt").write_text("client data")
    with pytest.raises(RequestError, match="already exists"):
        new_profile(dest, name="X", logo=logo, references=refs)
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]
    proc = subprocess.run([sys.executable, "-m", "brandstudio.cli", "profile", "new", str(tmp_path / "n")],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
    assert proc.returncode == 2 and "--name" in proc.stderr and "Traceback" not in proc.stderr


def test_a_profile_folder_under_a_file_is_refused_cleanly(tmp_path):
    logo, refs = brand_material(tmp_path / "material")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = subprocess.run(
        [sys.executable, "-m", "brandstudio.cli", "profile", "new", str(blocker / "brand"), "--name", "X",
         "--logo", str(logo), "--references", str(refs)], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "is a file, not a folder" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
    assert blocker.read_text() == "not a folder"
