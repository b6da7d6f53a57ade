"""The command line: render prints the clip's path; profile/templates commands; errors exit 2 cleanly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import PROFILES, probe
from typer.testing import CliRunner

from brandstudio.cli import app

runner = CliRunner()


def test_render_prints_the_clip_path(tmp_path):
    res = runner.invoke(app, ["render", str(PROFILES / "qinglan-tea"), "lifestyle", "--var", "product=碧螺春",
                              "--aspect", "16:9", "--duration", "1", "--resolution", "128", "--seed", "5",
                              "--output-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    path = res.stdout.strip().splitlines()[-1]
    assert path.endswith(".mp4")
    info = probe(__import__("pathlib").Path(path))
    assert (info["width"], info["height"]) == (228, 128) and info["audio_codec"] == "aac"
    assert "unsigned" in res.output and "[provenance] cert/key" in res.output  # square brackets survive rich
    qc = json.loads(__import__("pathlib").Path(path).with_suffix(".qc.json").read_text(encoding="utf-8"))
    assert f"QC {qc['status'].upper()} {qc['score']}" in res.output  # the verdict is on the terminal too


def test_render_json(tmp_path):
    out = tmp_path / "clip.mp4"
    res = runner.invoke(app, ["render", str(PROFILES / "aurora-coffee"), "announcement", "-v", "product=Winter Blend",
                              "-v", "date=From 1 December", "-a", "1:1", "--duration", "1", "--resolution", "96",
                              "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["path"] == str(out) and out.is_file() and data["aspect"] == "1:1"
    assert data["variables"]["date"] == "From 1 December"


def test_errors_exit_2_without_traceback(tmp_path):
    res = runner.invoke(app, ["render", str(PROFILES / "aurora-coffee"), "product-hero", "-v", "product=Costa Coffee",
                              "--duration", "1", "--resolution", "96", "--output-dir", str(tmp_path)])
    assert res.exit_code == 2
    assert "SafetyViolation" in res.output and "competitor:costa coffee" in res.output
    assert "Traceback" not in res.output
    assert list(tmp_path.iterdir()) == []
    # a variable outside its template's limits, before any work
    res = runner.invoke(app, ["render", str(PROFILES / "aurora-coffee"), "promo", "-v", "product=X",
                              "-v", "discount=150", "--output-dir", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 2 and "must be at most 70, got 150" in res.output, res.output
    assert "variables.discount" in res.output and "from 5 to 70" in res.output
    assert "Traceback" not in res.output
    assert list(tmp_path.iterdir()) == []
    res = runner.invoke(app, ["render", str(PROFILES / "aurora-coffee"), "product-hero", "-v", "productname"])
    assert res.exit_code == 2 and "NAME=VALUE" in res.output
    # an output that is a folder, or not an MP4, is refused before any work
    for target in (tmp_path, tmp_path / "clip.webm"):
        res = runner.invoke(app, ["render", str(PROFILES / "aurora-coffee"), "product-hero", "-v", "product=X",
                                  "-o", str(target)])  # fmt: skip
        assert res.exit_code == 2 and "RequestError" in res.output and "output" in res.output, res.output
        assert "Traceback" not in res.output and "rendered" not in res.output
    assert list(tmp_path.iterdir()) == []
    # a bad option value is the option's fault, not brand.toml's
    res = runner.invoke(app, ["render", str(PROFILES / "aurora-coffee"), "product-hero", "-v", "product=X",
                              "--upscaler", "foo"])  # fmt: skip
    assert res.exit_code == 2 and "--upscaler 'foo'" in res.output and "lanczos" in res.output
    assert "brand.toml is invalid" not in res.output and "file:    brand.toml" not in res.output


def test_profile_validate_show_schema(make_profile):
    res = runner.invoke(app, ["profile", "validate", str(PROFILES / "aurora-coffee"), str(PROFILES / "qinglan-tea")])
    assert res.exit_code == 0 and res.output.count("valid") == 2
    bad = make_profile("aurora-coffee", edit=lambda t: t.replace("fps = 16\nduration", "fps = 0\nduration"))
    res = runner.invoke(app, ["profile", "validate", str(bad)])
    assert res.exit_code == 2 and "output.fps" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["profile", "show", str(PROFILES / "qinglan-tea"), "--json"])
    assert res.exit_code == 0
    shown = json.loads(res.stdout)
    assert shown["id"] == "qinglan-tea" and "captions.font" in shown["assets"]
    res = runner.invoke(app, ["profile", "show", str(PROFILES / "aurora-coffee")])
    assert res.exit_code == 0 and "Aurora Coffee" in res.output
    res = runner.invoke(app, ["profile", "schema"])
    assert res.exit_code == 0 and "BrandSection" in json.loads(res.stdout)["$defs"]


def test_templates_list():
    res = runner.invoke(app, ["templates", "list", "--profile", str(PROFILES / "qinglan-tea")])
    assert res.exit_code == 0
    for name in ("product-hero", "lifestyle", "testimonial", "announcement"):
        assert name in res.output


def test_console_script_is_installed():
    res = subprocess.run([sys.executable, "-m", "brandstudio.cli", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "render" in res.stdout


def test_cli_keeps_optional_libraries_import_notices_out_of_its_output():
    """torchao (the `quant` extra) on a CPU torch, and transformers without torchvision, log
    notices at import; the CLI silences those loggers (unless the user set them), the library does not."""
    code = (
        "import logging\n"
        "from typer.testing import CliRunner\n"
        "from brandstudio.cli import app, QUIET_LOGGERS\n"
        "logging.getLogger('torchao').setLevel(logging.INFO)  # the user's own choice stays\n"
        f"r = CliRunner().invoke(app, ['profile', 'validate', {str(PROFILES / 'aurora-coffee')!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "levels = {n: logging.getLogger(n).level for n in QUIET_LOGGERS}\n"
        "assert levels.pop('torchao') == logging.INFO and set(levels.values()) == {logging.ERROR}, levels\n"
        "import diffusers.quantizers.torchao.torchao_quantizer\n"
        "from transformers import CLIPImageProcessor\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for noise in ("Unable to import `torchao` Tensor objects", "requires torchvision (not installed)"):
        assert noise not in proc.stderr


def test_sigterm_during_encoding_leaves_nothing_behind(tmp_path):
    """`kill` (SIGTERM) mid-render unwinds like Ctrl-C: ffmpeg is stopped, the hidden partial
    files are removed, nothing appears at the output path, and the exit status is 143."""
    import signal
    import time

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "brandstudio.cli", "render", str(PROFILES / "aurora-coffee"), "product-hero",
           "-v", "product=Night Roast", "--duration", "2", "--resolution", "128", "-o", str(out / "clip.mp4")]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if out.is_dir() and any(p.name.endswith(".part.mp4") for p in out.iterdir()):
            break  # ffmpeg is encoding
        time.sleep(0.02)
    assert proc.poll() is None, "the render ended before its encoder started"
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr[-2000:]
    assert "Traceback" not in stderr
    assert list(out.iterdir()) == []  # no clip, no .part files
    for pid in children:  # the encoder (and any other child) is gone
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
