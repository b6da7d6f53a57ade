"""Campaigns: CSV and matrix briefs, bad rows as failed jobs, manifest + audit log, kill and resume.

Renders are as small as the tiny model allows (0.25 s = 4 frames at 16 fps, 64 px), about a
second each on a CPU; the 50-row brief is planned in full and a 12-row one is rendered.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import PROFILES, REPO, probe
from typer.testing import CliRunner

from brandstudio import BrandStudio, RenderRequest
from brandstudio.campaign import load_campaign, plan, read_manifest, run
from brandstudio.cli import app
from brandstudio.errors import CampaignError

runner = CliRunner()
AURORA = PROFILES / "aurora-coffee"
TINY = {"duration": 0.25, "resolution": 64, "aspect": "1:1"}


def write_campaign(folder: Path, body: str, *, rows: list[str] | None = None, name: str = "c") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    header = f'[campaign]\nname = "{name}"\nprofile = "{AURORA.as_posix()}"\n'
    if rows is not None:
        (folder / "briefs.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        header += 'csv = "briefs.csv"\n'
    path = folder / f"{name}.toml"
    path.write_text(header + body, encoding="utf-8")
    return path


TINY_DEFAULTS = '[defaults]\nduration = 0.25\nresolution = 64\naspect = "1:1"\n'


def brief_rows(n: int) -> list[str]:
    """``n`` testimonial briefs; rows 4, 8 and 11 (1-based data rows) are bad. Three products,
    each with its own seed: quotes and stars are captions only, so rows of one product share
    their footage (generated once, then taken from the scene cache)."""
    rows = ["product,quote,stars,flavour,seed"]
    for i in range(1, n + 1):
        product, quote, stars, flavour = f"Roast {i % 3}", f"Lovely cup number {i}", str(3 + i % 3), ""
        if i == 4:
            flavour = "cherry"  # unknown variable
        elif i == 8:
            product = "Starbucks Pike Place"  # blocked competitor
        elif i == 11:
            stars = "five"  # not an int
        rows.append(f"{product},{quote},{stars},{flavour},{i % 3 + 1}")
    return rows


BAD = {4: "has no variable 'flavour'", 8: "competitor:starbucks", 11: "must be a int, got 'five'"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def audit_records(out_dir: Path) -> list[dict]:
    path = out_dir / "audit" / "aurora-coffee.jsonl"
    return manifest_records(path) if path.exists() else []


def check_disk_agrees(out_dir: Path) -> dict[str, dict]:
    """Every done job's MP4 exists with the recorded sha256, with one audit line each; no temp files."""
    last = read_manifest(out_dir / "manifest.jsonl")
    done = {k: r for k, r in last.items() if r["status"] == "done"}
    for rec in done.values():
        assert sha256(Path(rec["output"])) == rec["sha256"]
    audit = audit_records(out_dir)
    assert sorted(a["job"] for a in audit) == sorted(done)
    for a in audit:
        assert a["sha256"] == done[a["job"]]["sha256"] and a["output"] == done[a["job"]]["output"]
    assert not list(out_dir.rglob("*.part*"))
    return last


def kill_cli_run_after(path: Path, manifest: Path, done: int, *, env=None, timeout: float = 300) -> None:
    """Start `brandstudio campaign run PATH --quiet` and SIGKILL it (and its ffmpeg, as a lost
    machine would) once the manifest records ``done`` finished clips."""
    cmd = [sys.executable, "-m", "brandstudio.cli", "campaign", "run", str(path), "--quiet"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if sum(r["status"] == "done" for r in read_manifest(manifest).values()) >= done:
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read().decode()


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return BrandStudio(AURORA, output_dir=tmp_path_factory.mktemp("renders"))


def test_fifty_row_csv_plans_fifty_stable_jobs(tmp_path):
    path = write_campaign(tmp_path, 'template = "testimonial"\n' + TINY_DEFAULTS, rows=brief_rows(50))
    c = load_campaign(path)
    assert len(c.jobs) == 50 and len({j.id for j in c.jobs}) == 50
    assert len({j.output for j in c.jobs}) == 50
    assert all(j.output.parent == tmp_path / "renders" / "c" and j.output.suffix == ".mp4" for j in c.jobs)
    again = load_campaign(path)
    assert [(j.id, j.output) for j in again.jobs] == [(j.id, j.output) for j in c.jobs]
    assert c.jobs[0].source == "briefs.csv:2" and c.jobs[0].seed == 2 and c.jobs[0].duration == 0.25
    assert c.jobs[0].variables == {"product": "Roast 1", "quote": "Lovely cup number 1", "stars": "4"}
    assert "flavour" not in c.jobs[0].variables and c.jobs[3].variables["flavour"] == "cherry"
    assert {p.status for p in plan(c)} == {"pending"}


def test_csv_campaign_bad_rows_fail_alone(tmp_path, studio):
    """12 rows, 3 bad: 9 clips, 3 failed jobs with the render's clear errors; the CLI says partial (3)."""
    path = write_campaign(tmp_path, 'template = "testimonial"\n' + TINY_DEFAULTS, rows=brief_rows(12))
    c = load_campaign(path)
    events = []
    t0 = time.perf_counter()
    summary = run(c, studio=studio, on_event=events.append)  # and a plain line per job
    print(f"12-row campaign: {time.perf_counter() - t0:.1f}s")
    assert summary.exit_code == 3 and not summary.ok
    assert len(summary.rendered) == 9 and summary.done == 9 and summary.total == 12
    failed = {f.job.source: f for f in summary.failed}
    assert set(failed) == {f"briefs.csv:{i + 1}" for i in BAD}
    for i, text in BAD.items():
        assert text in failed[f"briefs.csv:{i + 1}"].message
    assert failed["briefs.csv:9"].error_type == "SafetyViolation"
    assert "briefs.csv:5" in str(summary) and "TemplateError" in str(summary)
    # progress: started, every stage, done/failed per job, counted over the jobs of this run
    done_events = [e for e in events if e.status in ("done", "failed")]
    assert [e.index for e in done_events] == list(range(1, 13)) and {e.total for e in events} == {12}
    assert {"prompt", "safety", "generation", "post", "encode"} <= {e.stage for e in events if e.stage}

    last = check_disk_agrees(c.output_dir)
    assert sorted(r["status"] for r in last.values()) == ["done"] * 9 + ["failed"] * 3
    for rec in last.values():
        if rec["status"] == "failed":
            assert rec["error"]["type"] in ("TemplateError", "SafetyViolation") and rec["error"]["message"]
        else:
            assert rec["timings"]["generation"] > 0 and rec["model"] == "tiny"
            assert probe(Path(rec["output"]))["width"] == 64
    audit = audit_records(c.output_dir)
    assert len(audit) == 9
    a = audit[0]
    assert a["profile_fingerprint"] == studio.profile.fingerprint and a["seed"] == 2 and a["campaign"] == "c"
    assert sorted(r.get("cache") for r in last.values() if r["status"] == "done").count("miss") <= 3
    assert a["user"] and a["host"] and a["time"].endswith("+00:00") and a["variables"]["stars"] == 4
    assert a["label"] and isinstance(a["safety"], list)

    # the CLI: plan shows what is done; a rerun renders nothing new and still exits 3
    mtimes = {p: p.stat().st_mtime_ns for p in c.output_dir.glob("*.mp4")}
    res = runner.invoke(app, ["campaign", "plan", str(path)])
    assert res.exit_code == 0, res.output
    assert "12 jobs: 9 done, 3 failed" in res.output
    res = runner.invoke(app, ["campaign", "run", str(path), "--quiet", "--no-retry-failed"])
    assert res.exit_code == 3, res.output
    assert "9/12 done (0 rendered now, 9 already done), 3 failed" in res.output
    assert "competitor:starbucks" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["campaign", "run", str(path), "--quiet"])  # retries the 3, which fail again
    assert res.exit_code == 3 and "[3/3] FAILED" in res.output and "done    " not in res.output
    assert {p: p.stat().st_mtime_ns for p in c.output_dir.glob("*.mp4")} == mtimes
    assert len(audit_records(c.output_dir)) == 9


def test_matrix_is_the_cartesian_product(tmp_path):
    path = write_campaign(
        tmp_path,
        'template = "product-hero"\n'
        + TINY_DEFAULTS
        + '[matrix]\nproduct = ["Night Roast", "Day Roast", "Decaf"]\n'
        'aspect = ["9:16", "1:1"]\n',
    )
    c = load_campaign(path)
    combos = [(j.variables["product"], j.aspect) for j in c.jobs]
    assert combos == [(p, a) for p in ("Night Roast", "Day Roast", "Decaf") for a in ("9:16", "1:1")]
    assert len({j.id for j in c.jobs}) == 6
    # CSV rows x matrix, named outputs get the matrix values appended
    rows = ["product,output", "Night Roast,night", "Day Roast,day"]
    path = write_campaign(
        tmp_path / "x",
        'template = "product-hero"\n[matrix]\naspect = ["9:16", "16:9"]\nseed = [1, 2]\n',
        rows=rows,
    )
    c = load_campaign(path)
    assert len(c.jobs) == 8
    assert c.jobs[0].output.name == "night-9x16-1.mp4" and c.jobs[-1].output.name == "day-16x9-2.mp4"


def test_campaign_file_errors_exit_2_cleanly(tmp_path):
    path = write_campaign(tmp_path, 'template = "product-hero"\n[defaults]\nresolutoin = 64\n')
    res = runner.invoke(app, ["campaign", "plan", str(path)])
    assert res.exit_code == 2 and "CampaignError" in res.output and "defaults.resolutoin" in res.output
    assert "Traceback" not in res.output
    path = write_campaign(tmp_path, 'template = "product-hero"\n[matrix]\nproduct = []\n')
    res = runner.invoke(app, ["campaign", "run", str(path)])
    assert res.exit_code == 2 and "matrix" in res.output
    path = write_campaign(tmp_path, 'template = "product-hero"\ncsv = "missing.csv"\n')
    res = runner.invoke(app, ["campaign", "run", str(path)])
    assert res.exit_code == 2 and "missing.csv" in res.output
    res = runner.invoke(app, ["campaign", "plan", str(tmp_path / "nope.toml")])
    assert res.exit_code == 2 and "no campaign file" in res.output


def test_unknown_backend_is_refused_and_runs_are_exclusive(tmp_path):
    from filelock import FileLock

    path = write_campaign(tmp_path, 'template = "product-hero"\n[defaults.variables]\nproduct = "X"\n')
    with pytest.raises(CampaignError, match="unknown campaign backend 'slurm'"):
        run(path, backend="slurm")
    bad = write_campaign(tmp_path / "bad", 'template = "product-hero"\nbackend = "slurm"\n')
    res = runner.invoke(app, ["campaign", "run", str(bad)])
    assert res.exit_code == 2 and "campaign.backend" in res.output and "Traceback" not in res.output
    c = load_campaign(path)
    c.output_dir.mkdir(parents=True)
    with FileLock(str(c.output_dir / ".campaign.lock")):
        with pytest.raises(CampaignError, match="in progress"):
            run(c, backend="local")


def test_render_many_with_a_manifest_resumes(tmp_path, studio):
    reqs = [
        RenderRequest(template="product-hero", variables={"product": "Night Roast"}, seed=3, **TINY),
        RenderRequest(template="product-hero", variables={"product": "Costa Coffee"}, seed=3, **TINY),
    ]
    manifest = tmp_path / "batch.jsonl"
    with pytest.raises(CampaignError, match="1 of 2 renders failed") as info:
        studio.render_many(reqs, manifest=manifest)
    assert len(info.value.summary.rendered) == 1
    first = info.value.summary.rendered[0].output
    mtime = first.stat().st_mtime_ns
    reqs[1] = reqs[1].with_variables(product="Day Roast")
    results = studio.render_many(reqs, manifest=manifest)
    assert [r.variables["product"] for r in results] == ["Night Roast", "Day Roast"]
    assert results[0].path == first and first.stat().st_mtime_ns == mtime
    assert len(audit_records(tmp_path)) == 2


def test_jobs_sharing_a_scene_generate_it_once(tmp_path, studio):
    """`cta` only changes a caption: both clips need the same footage, generated once (scene cache)."""
    path = write_campaign(
        tmp_path,
        'template = "product-hero"\n'
        + TINY_DEFAULTS
        + 'seed = 5\n[defaults.variables]\nproduct = "Night Roast"\n'
        '[matrix]\ncta = ["Available now", "In stores soon"]\n',
    )
    summary = run(path, studio=studio, quiet=True)
    assert summary.exit_code == 0 and len(summary.rendered) == 2
    last = read_manifest(load_campaign(path).manifest_path)
    assert [last[j.id]["cache"] for j in summary.rendered] == ["miss", "hit"]
    assert [a["scene_cache"] for a in audit_records(tmp_path / "renders" / "c")] == ["miss", "hit"]


def test_killed_run_resumes_without_rerendering(tmp_path, studio):
    """SIGKILL a CLI run once 2 clips are done; nothing partial at any output; the restart
    renders only the rest; manifest, audit log and files agree."""
    path = write_campaign(
        tmp_path,
        'template = "product-hero"\n' + TINY_DEFAULTS + '[matrix]\nproduct = ["Night Roast", "Day Roast"]\n'
        'aspect = ["9:16", "1:1", "16:9"]\n',
    )
    c = load_campaign(path)
    out_dir = c.output_dir
    env = {**os.environ, "BRANDSTUDIO_SCENE_CACHE": str(tmp_path / "scenes")}  # nothing cached: real renders
    kill_cli_run_after(path, c.manifest_path, 2, env=env)

    last = read_manifest(out_dir / "manifest.jsonl")
    done_before = {k: r for k, r in last.items() if r["status"] == "done"}
    assert 2 <= len(done_before) < 6
    for job in c.jobs:  # nothing half-written at an output path: absent, or a complete clip
        if job.output.exists():
            assert probe(job.output)["video_codec"] == "h264"
    before = {
        Path(r["output"]): (r["sha256"], Path(r["output"]).stat().st_mtime_ns) for r in done_before.values()
    }

    assert [p.status for p in plan(c)].count("done") == len(done_before)
    summary = run(c, studio=studio, quiet=True)  # the restart (in-process: the model is loaded already)
    assert summary.exit_code == 0, str(summary)
    assert len(summary.rendered) == 6 - len(done_before) and len(summary.skipped) == len(done_before)

    final = check_disk_agrees(out_dir)
    assert {r["status"] for r in final.values()} == {"done"} and len(final) == 6
    for p, (digest, mtime) in before.items():
        assert sha256(p) == digest and p.stat().st_mtime_ns == mtime
    started = [r["job"] for r in manifest_records(out_dir / "manifest.jsonl") if r["status"] == "started"]
    for job_id in done_before:
        assert started.count(job_id) == 1  # never started again
    assert len(audit_records(out_dir)) == 6
    assert {p.status for p in plan(c)} == {"done"}
    # killed after the audit line but before the manifest's "done": recorded done, not rendered again
    victim = next(iter(before))
    job_id = next(k for k, r in done_before.items() if Path(r["output"]) == victim)
    line = next(a for a in audit_records(out_dir) if a["job"] == job_id)
    with open(out_dir / "manifest.jsonl", "a", encoding="utf-8") as fh:
        fh.write(
            json.dumps({**final[job_id], "status": "started", "time": "2000-01-01T00:00:00+00:00"}) + "\n"
        )
    with open(out_dir / "audit" / "aurora-coffee.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")
    assert [p.status for p in plan(c)].count("interrupted") == 1
    res = runner.invoke(app, ["campaign", "run", str(path), "--quiet"])
    assert res.exit_code == 0 and "(0 rendered now, 6 already done)" in res.output, res.output
    assert read_manifest(out_dir / "manifest.jsonl")[job_id]["recovered"] is True
    assert victim.stat().st_mtime_ns == before[victim][1]
    # a clip changed on disk is no longer done: it would render again
    victim.write_bytes(b"tampered")
    assert sorted(p.status for p in plan(c)).count("pending") == 1


def test_example_campaign_plans():
    c = load_campaign(REPO / "notebooks" / "campaigns" / "spring.toml")
    assert len(c.jobs) == 6 and c.profile.resolve() == AURORA.resolve()
    assert c.output_dir.resolve() == (REPO / "renders" / "aurora-spring").resolve()
