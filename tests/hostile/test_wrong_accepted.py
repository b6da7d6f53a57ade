"""Hostile input: things that were wrongly accepted.

- a render whose clip or sidecars would land inside a brand profile directory (versioned client
  data), directly or through a symlink, is refused before any work;
- an empty campaign (a CSV with a header and no rows) is an error with exit status 2 that says
  why, in `campaign plan` and `campaign run`, not an empty success.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import PROFILES, REPO

from brandstudio import BrandStudio
from brandstudio.campaign import load_campaign, run
from brandstudio.errors import CampaignError, RequestError

AURORA = PROFILES / "aurora-coffee"
TINY = {"duration": 0.25, "resolution": 64, "aspect": "1:1"}


def cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI in a subprocess; its stderr with runs of whitespace made one space (rich wraps)."""
    env = {**os.environ, "COLUMNS": "400"}
    proc = subprocess.run([sys.executable, "-m", "brandstudio.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=env)  # fmt: skip
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, " ".join(proc.stderr.split()))


class CountingGenerator:
    """Moving noise in place of the video model, counting its calls (QC refuses frozen footage)."""

    model_id = "counting-noise"

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, spec) -> np.ndarray:
        self.calls += 1
        rng = np.random.default_rng(spec.seed)
        return rng.integers(0, 256, (spec.num_frames, spec.height, spec.width, 3), dtype=np.uint8)


def listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


# -- outputs inside a profile directory ------------------------------------------------------------


@pytest.fixture
def profile(make_profile):
    return make_profile("aurora-coffee")


def outputs_inside(profile: Path, tmp_path: Path) -> list[Path]:
    """Ways to name a clip inside the profile: directly, in a sub-folder to be made, through a
    symlink to the profile, and through `..` that climbs back into it."""
    link = tmp_path / "looks-harmless"
    link.symlink_to(profile, target_is_directory=True)
    return [
        profile / "clip.mp4",
        profile / "renders" / "new" / "clip.mp4",
        link / "clip.mp4",
        profile.parent / "elsewhere" / ".." / profile.name / "clip.mp4",
    ]


def test_a_clip_inside_the_profile_directory_is_refused_before_any_work(profile, tmp_path):
    generator = CountingGenerator()
    studio = BrandStudio(profile, generator=generator, cache=False, output_dir=tmp_path / "renders")
    before = listing(profile)
    for out in outputs_inside(profile, tmp_path):
        with pytest.raises(RequestError) as info:
            studio.render("product-hero", product="Night Roast", output=out, **TINY)
        err = info.value
        assert "profile directory" in err.message and "versioned client data" in err.message
        assert err.field == "output" and "outside the profile directory" in err.fix
        assert str(profile.resolve()) in err.message
    assert generator.calls == 0 and listing(profile) == before
    # outside it, the same render is fine
    result = studio.render("product-hero", product="Night Roast", output=tmp_path / "ok" / "clip.mp4", **TINY)
    assert result.path.is_file() and generator.calls == 1


def test_a_clip_inside_another_profile_directory_is_refused(profile, make_profile, tmp_path):
    other = make_profile("qinglan-tea")
    studio = BrandStudio(profile, generator=CountingGenerator(), cache=False)
    with pytest.raises(RequestError, match="inside the brand profile directory"):
        studio.render("product-hero", product="Night Roast", output=other / "clips" / "x.mp4", **TINY)


def test_the_cli_refuses_an_output_inside_the_profile(profile):
    before = listing(profile)
    res = cli("render", str(profile), "product-hero", "--var", "product=Night Roast", "--output",
              str(profile / "clip.mp4"), "--duration", "0.25", "--resolution", "64", "--device", "cpu")  # fmt: skip
    assert res.returncode == 2
    assert "profile directory" in res.stderr and "outside the profile directory" in res.stderr
    assert "output" in res.stderr
    assert listing(profile) == before


def test_a_default_output_inside_the_profile_is_refused_before_any_work(profile):
    """With no output path, the default one (<output_dir>/<profile id>/...) is checked in step 2:
    nothing is generated and nothing at all lands in the profile (not even the music rotation's state)."""
    before = listing(profile)
    generator = CountingGenerator()
    studio = BrandStudio(profile, generator=generator, cache=False, output_dir=profile.parent)
    with pytest.raises(RequestError, match="inside the brand profile directory") as info:
        studio.render("product-hero", product="Night Roast", **TINY)
    assert info.value.field == "output" and generator.calls == 0
    assert listing(profile) == before


# -- empty campaigns ------------------------------------------------------------------------------


def empty_campaign(folder: Path, csv_text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "briefs.csv").write_text(csv_text, encoding="utf-8")
    path = folder / "empty.toml"
    path.write_text(
        f'[campaign]\nname = "empty"\nprofile = "{AURORA.as_posix()}"\ntemplate = "product-hero"\n'
        'csv = "briefs.csv"\n[matrix]\naspect = ["9:16", "1:1"]\n',
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("csv_text", ["product,seed\n", "product,seed\n\n , \n"], ids=["header-only", "blank-rows"])
def test_an_empty_campaign_is_an_error_that_says_why(tmp_path, csv_text):
    path = empty_campaign(tmp_path, csv_text)
    with pytest.raises(CampaignError) as info:
        run(load_campaign(path), quiet=True)
    err = info.value
    assert "no jobs" in err.message and "CSV" in err.message and err.field == "campaign.csv"
    assert err.file == str(path) and "row" in err.fix
    assert not (tmp_path / "renders" / "empty" / "manifest.jsonl").exists()  # nothing started
    for command in ("plan", "run"):
        res = cli("campaign", command, str(path))
        assert res.returncode == 2, (command, res.stdout, res.stderr)
        assert "no jobs" in res.stderr and "header but no data rows" in res.stderr
        assert str(path) in res.stderr and "add one row per clip" in res.stderr


def test_an_empty_csv_file_is_an_error_too(tmp_path):
    path = empty_campaign(tmp_path, "")
    for command in ("plan", "run"):
        res = cli("campaign", command, str(path))
        assert res.returncode == 2 and "CSV" in res.stderr, res.stderr
