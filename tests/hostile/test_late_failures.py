"""Hostile input: failures after the expensive part.

Everything that can be checked before generation is checked in step 2 (each stage's
``check(brief, profile)``), so a request that cannot be delivered fails in milliseconds with
nothing generated and nothing written: a prompt longer than the text encoder reads, an output
path with a null byte, a folder that is a file, an unwritable folder, a name too long for the
file system, a folder where the clip or one of its sidecars goes. A counting generator proves
generation was never called; the CLI runs prove the exit status and message.
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
from brandstudio.errors import BrandStudioError, RequestError
from brandstudio.generation import check as generation_check
from brandstudio.generation.checks import TEXT_MAX_TOKENS, prompt_tokens

AURORA = PROFILES / "aurora-coffee"
TINY = {"duration": 0.25, "resolution": 64, "aspect": "1:1"}


class CountingGenerator:
    """Moving noise in place of the video model, counting its calls."""

    model_id = "counting-noise"

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, spec) -> np.ndarray:
        self.calls += 1
        return np.random.default_rng(spec.seed).integers(0, 256, (spec.num_frames, spec.height, spec.width, 3),
                                                          dtype=np.uint8)  # fmt: skip


@pytest.fixture
def studio(tmp_path):
    return BrandStudio(AURORA, generator=CountingGenerator(), cache=False, output_dir=tmp_path / "renders")


def cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI in a subprocess; stderr with runs of whitespace made one space (rich wraps)."""
    proc = subprocess.run([sys.executable, "-m", "brandstudio.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "COLUMNS": "400"})  # fmt: skip
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, " ".join(proc.stderr.split()))


def render_args(output: Path | str, *more: str) -> list[str]:
    return ["render", str(AURORA), "product-hero", "--var", "product=Night Roast", "--output", str(output),
            "--duration", "0.25", "--resolution", "64", "--aspect", "1:1", "--device", "cpu", *more]  # fmt: skip


# -- prompts longer than the text encoder reads ------------------------------------------------------


def test_a_prompt_too_long_for_the_text_encoder_fails_before_generation(studio, tmp_path):
    long = {"surface": "a counter of reclaimed oak " * 10, "packaging": "a matte paper bag with a gold foil seal " * 6}
    with pytest.raises(RequestError) as info:  # each variable within its limit, together too long
        studio.render("product-hero", product="Night Roast", **long, output=tmp_path / "x.mp4", **TINY)
    err = info.value
    assert err.field == "prompt" and f"at most {TEXT_MAX_TOKENS} tokens" in err.message
    assert "tiny" in err.message and "shorten" in err.fix
    assert studio.generator.calls == 0 and not list(tmp_path.iterdir())


def test_a_chinese_prompt_is_counted_in_tokens_not_characters(studio, tmp_path):
    """The tiny model's tokenizer is byte-level: a CJK character is 3 tokens. 120 of them fit in
    512 characters but not in 512 tokens."""
    with pytest.raises(RequestError, match="too long for the text encoder"):
        studio.render("product-hero", product="Night Roast", surface="木" * 120, output=tmp_path / "x.mp4", **TINY)
    assert studio.generator.calls == 0
    # a prompt that fits still renders
    result = studio.render("product-hero", product="Night Roast", surface="木" * 10, output=tmp_path / "ok.mp4", **TINY)
    assert result.path.is_file() and studio.generator.calls == 1


def test_the_token_count_is_exact_for_the_tiny_model_and_bounded_otherwise():
    assert prompt_tokens("a" * 511, "tiny") == (512, True)
    assert prompt_tokens("  a &amp;  b ", "tiny") == (len("a & b") + 1, True)  # as the pipeline cleans it
    tokens, exact = prompt_tokens("word " * 3000, "no-such-org/no-such-model")
    assert not exact and tokens > TEXT_MAX_TOKENS  # no tokenizer on disk: refused only when surely too long
    assert prompt_tokens("word " * 100, "no-such-org/no-such-model")[0] <= TEXT_MAX_TOKENS


def test_a_negative_prompt_or_a_shot_prompt_too_long_is_refused(make_profile):
    from brandstudio.profile import load_profile
    from brandstudio.prompts import TemplateLibrary, make_brief
    from brandstudio.request import RenderRequest

    terms = "".join(f"smudge {i}, " for i in range(60))  # distinct terms: repeated ones are composed once
    long_negative = make_profile(edit=lambda t: t.replace('negative = "blurry', 'negative = "' + terms + "blurry"))
    profile = load_profile(long_negative)
    brief = make_brief(RenderRequest(template="product-hero", variables={"product": "X"}), profile,
                       TemplateLibrary.for_profile(profile.root))  # fmt: skip
    with pytest.raises(RequestError, match="negative prompt is too long") as info:
        generation_check(brief, profile)
    assert info.value.field == "negative_prompt"
    profile = load_profile(AURORA)
    brief = make_brief(RenderRequest(template="brand-story", variables={"product": "茶" * 250}), profile,
                       TemplateLibrary.for_profile(profile.root))  # fmt: skip
    with pytest.raises(RequestError, match=r"the prompt of shots\[2\] is too long") as info:
        generation_check(brief, profile)
    assert info.value.field == "shots[2].prompt"


def test_the_cli_refuses_a_long_prompt_with_exit_2(tmp_path):
    out = tmp_path / "x.mp4"
    res = cli(*render_args(out, "--var", "surface=" + "polished marble " * 18, "--var", "packaging=" + "莓" * 200))
    assert res.returncode == 2, res.stderr
    assert "too long for the text encoder" in res.stderr and "512 tokens" in res.stderr and "fix:" in res.stderr
    assert not out.exists() and not list(tmp_path.iterdir())


# -- output paths that would fail at encode time --------------------------------------------------------


def bad_outputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (output path, what the message must say)."""
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    sidecar_dir = tmp_path / "sidecar"
    (sidecar_dir / "clip.srt").mkdir(parents=True)  # a folder where the captions go
    qc_dir = tmp_path / "qc"
    (qc_dir / "clip.qc.json").mkdir(parents=True)
    return {
        "folder-is-a-file": (a_file / "clip.mp4", "is a file, not a folder"),
        "deeper-under-a-file": (a_file / "a" / "b" / "clip.mp4", "is a file, not a folder"),
        "name-too-long": (tmp_path / ("x" * 240 + ".mp4"), "bytes long"),
        "cjk-name-too-long": (tmp_path / ("视频" * 40 + ".mp4"), "bytes long"),
        "null-byte": (Path(str(tmp_path / "clip") + "\0.mp4"), "null byte"),
        "folder-at-a-sidecar": (sidecar_dir / "clip.mp4", "is an existing folder"),
        "folder-at-the-qc-report": (qc_dir / "clip.mp4", "is an existing folder"),
    }


@pytest.mark.parametrize(
    "case",
    ["folder-is-a-file", "deeper-under-a-file", "name-too-long", "cjk-name-too-long", "null-byte",
     "folder-at-a-sidecar", "folder-at-the-qc-report"],
)  # fmt: skip
def test_a_bad_output_path_fails_in_the_check_step_with_nothing_generated(studio, tmp_path, case):
    out, says = bad_outputs(tmp_path)[case]
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(BrandStudioError) as info:
        studio.render("product-hero", product="Night Roast", output=out, **TINY)
    assert says in info.value.message and info.value.field == "output" and info.value.fix
    assert studio.generator.calls == 0
    assert sorted(tmp_path.rglob("*")) == before  # nothing made, not even a folder


def test_an_unwritable_folder_fails_in_the_check_step(studio, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere whatever the mode: answer as a read-only mount would
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
            False if Path(path) == locked and mode & os.W_OK else real_access(path, mode, **kw)))  # fmt: skip
    try:
        with pytest.raises(RequestError, match="cannot be written"):
            studio.render("product-hero", product="Night Roast", output=locked / "sub" / "clip.mp4", **TINY)
    finally:
        locked.chmod(0o755)
    assert studio.generator.calls == 0


def test_the_cli_refuses_bad_output_paths_with_exit_2(tmp_path):
    for case in ("folder-is-a-file", "name-too-long", "folder-at-a-sidecar"):
        folder = tmp_path / case
        folder.mkdir()
        out, says = bad_outputs(folder)[case]
        res = cli(*render_args(out))
        assert res.returncode == 2, (case, res.stderr)
        assert says in res.stderr and "field: output" in res.stderr and "fix:" in res.stderr, res.stderr
