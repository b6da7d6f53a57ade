"""Progress through one callback: every stage's start, each denoising step of each expert, each
encoded chunk, each QC check; and a render from Python prints nothing the user did not ask for."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

from helpers import PROFILES, REPO, probe

from brandstudio import BrandStudio, Progress
from brandstudio.generation.experts import expert_step_counts
from brandstudio.progress import STAGES


def test_a_render_reports_every_stage_step_and_chunk(tmp_path):
    events: list[Progress] = []
    stages: list[str] = []
    studio = BrandStudio(PROFILES / "aurora-coffee", output_dir=tmp_path, cache=False)
    r = studio.render("product-hero", product="Night Roast", duration=1.0, resolution=128, seed=5,
                      on_progress=events.append, on_stage=stages.append)  # fmt: skip

    started = [e.stage for e in events if e.step == 0 and e.total == 0]
    assert started == [s for s in STAGES if s in started] and set(STAGES) <= set(started)
    assert stages == started  # on_stage sees each start, in the same order

    # generation: one event per denoising step, split between the experts as the scheduler says
    gen = [e for e in events if e.stage == "generation" and e.total]
    steps = r.generation["steps"]
    counts = Counter(e.detail for e in gen if e.detail not in ("decoding", "decode"))
    expected = expert_step_counts(studio.generator.pipeline, steps, r.generation["flow_shift"])
    assert counts == {"high-noise expert": expected["transformer"], "low-noise expert": expected["transformer_2"]}
    assert [e.step for e in gen] == [*range(1, steps + 1), steps, steps + 1]  # the decode: starts, ends
    assert [e.detail for e in gen[-2:]] == ["decoding", "decode"] and all(e.total == steps + 1 for e in gen)

    # encode: frames done after each chunk, ending at the delivered frame count
    enc = [e for e in events if e.stage == "encode" and e.total]
    n_frames = probe(r.path)["frames"] or round(r.duration * r.fps)
    assert enc and enc[-1].step == enc[-1].total == n_frames
    assert [e.step for e in enc] == sorted(e.step for e in enc)

    qc = [e for e in events if e.stage == "qc" and e.total]
    assert qc and qc[-1].step == qc[-1].total


def test_import_and_render_from_python_print_nothing(tmp_path):
    """A notebook shows only the progress and the result: no third-party import notices."""
    code = (
        "import brandstudio\n"
        f"s = brandstudio.BrandStudio({str(PROFILES / 'qinglan-tea')!r}, output_dir={str(tmp_path)!r}, cache=False)\n"
        "s.render('product-hero', product='龙井', duration=1.0, resolution=128, seed=2)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "" and proc.stderr == ""
    assert len(list(tmp_path.rglob("*.mp4"))) == 1
