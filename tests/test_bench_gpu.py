"""bench/gpu.sh: the one prepared GPU run, checked on the CPU through its --dry-run (the same code
paths at toy sizes), so that the rare GPU session finds a script that works."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "gpu.sh"

QUALITY_PLANS = [("quality", "resident"), ("quality", "swap"), ("quality", "group-offload")]
FAST_BALANCED = [("fast", "resident"), ("balanced", "resident")]
STEPS = ["s/step", "clip s (steps x s/step)", "estimate GB"]
# every measurement's table: title prefix -> (first cells of its rows, the columns that must be numbers)
TABLES = {
    "LUT grade": ([("torch on cpu",), ("ffmpeg lut3d",)], ["frames/s"]),
    "Real-ESRGAN x4plus": ([("2",)], ["s/frame", "frames/s"]),
    "RIFE 4.6": ([("rife, RIFE(",), ("flow",)], ["frames made/s", "vs flow"]),
    "Wan2.1 VAE decode": ([("16x2x8x8",)], ["s", "frames/s"]),
    "Wan2.2-TI2V-5B,": (QUALITY_PLANS + FAST_BALANCED, STEPS),
    "Wan2.2-T2V-A14B,": (QUALITY_PLANS[:2] + FAST_BALANCED, STEPS),
    "Wan2.2-T2V-A14B under group-offload,": (QUALITY_PLANS[2:], STEPS),
    "LoRA training on one Wan2.2-T2V-A14B expert,": ([("float32",)], ["s/step", "steps/s", "LoRA params"]),
}


def load_gpu_module():
    """bench/gpu.py as a module, leaving neither bench/ on sys.path nor bench's scripts in
    sys.modules (their names are generic: grade, generation, ...)."""
    path, bench = list(sys.path), REPO / "bench"
    spec = importlib.util.spec_from_file_location("bench_gpu", bench / "gpu.py")
    module = sys.modules["bench_gpu"] = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path[:] = path
        for name, loaded in list(sys.modules.items()):
            if Path(getattr(loaded, "__file__", None) or "/").parent == bench:
                del sys.modules[name]


def tables(report: str) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The report's Markdown tables: title -> (columns, rows of cells)."""
    found, title = {}, None
    for line in report.splitlines():
        if line.startswith("##### "):
            title = line[6:]
            found[title] = ([], [])
        elif title and line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            columns, rows = found[title]
            (rows if columns else columns).extend([cells] if columns else cells)
    return found


@pytest.mark.slow  # ~35 s on 2 cores: six processes importing torch (four of them diffusers)
def test_dry_run_reports_every_measurement_with_numbers():
    before = hashlib.sha256((REPO / "bench" / "RESULTS.md").read_bytes()).hexdigest()
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--no-append"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = proc.stdout
    assert report.startswith("#### GPU run, ") and "dry run on the CPU at toy sizes" in report
    assert "FAILED" not in report and "skipped" not in report and "stopped at its deadline" not in report
    assert len(re.findall(r"^`[a-z0-9-]+`: ran in \d+ s\.$", report, flags=re.M)) == len(TABLES)
    found = tables(report)
    for prefix, (first_cells, numeric) in TABLES.items():
        titles = [t for t in found if t.startswith(prefix)]
        assert len(titles) == 1, (prefix, list(found))
        columns, rows = found[titles[0]]
        assert len(rows) == len(first_cells), (prefix, rows)
        for row, cells in zip(rows, first_cells, strict=True):
            assert row[0].startswith(cells[0]) and tuple(row[1 : len(cells)]) == cells[1:], row
        for row in rows:
            for column in numeric:
                value = float(row[columns.index(column)].rstrip("x"))
                assert value > 0 or column == "estimate GB", (prefix, column, row)
    # the memory estimate is estimate_memory's, and the swap plan times the expert crossing of A14B
    a14b = found[next(t for t in found if t.startswith("Wan2.2-T2V-A14B,"))]
    swap = next(r for r in a14b[1] if r[1] == "swap")
    assert "expert swaps of" in swap[-1]
    assert hashlib.sha256((REPO / "bench" / "RESULTS.md").read_bytes()).hexdigest() == before


def test_without_cuda_it_refuses_unless_dry_run():
    import torch

    if torch.cuda.is_available():  # the refusal exists only where there is no GPU
        pytest.skip("this machine has CUDA: the script would measure")
    proc = subprocess.run(["bash", str(SCRIPT), "--no-append"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "no CUDA device" in proc.stderr and "--dry-run" in proc.stderr


def test_report_goes_at_the_end_of_the_gpu_section(tmp_path):
    gpu = load_gpu_module()
    text = (REPO / "bench" / "RESULTS.md").read_text(encoding="utf-8")
    assert gpu.RESULTS_SECTION in text.splitlines()
    out = gpu.insert_into_section(text, gpu.RESULTS_SECTION, "#### GPU run, today\n\n| a |\n")
    start = out.index(gpu.RESULTS_SECTION)
    block = out.index("#### GPU run, today")
    next_section = out.index("\n## ", start)
    assert start < block < next_section
    assert out.replace("#### GPU run, today\n\n| a |\n\n", "") == text
    # a file without the section gets it at the end
    assert gpu.insert_into_section("# R\n", "### S", "x").endswith("### S\n\nx\n")
