"""Campaigns at scale: a 50-row CSV brief from the CLI, killed and resumed; the same campaign on
a local Ray cluster with logical GPUs (same clips, byte for byte); clips on shared storage.

Clips are as small as the tiny model allows (0.25 s, 64 px); three products share their footage
through the scene cache, so after the first three scenes a job costs its post stage and encode.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import probe
from test_campaign import (
    AURORA,
    BAD,
    TINY_DEFAULTS,
    audit_records,
    brief_rows,
    check_disk_agrees,
    kill_cli_run_after,
    manifest_records,
    runner,
    sha256,
    write_campaign,
)

from brandstudio.campaign import load_campaign, plan, read_manifest, run
from brandstudio.cli import app
from brandstudio.errors import CampaignError

ROWS = brief_rows(50)  # rows 4, 8 and 11 are bad: 47 clips, 3 failed jobs
BAD_SOURCES = {f"briefs.csv:{n + 1}": why for n, why in BAD.items()}


def check_failures(last: dict[str, dict]) -> None:
    failed = {r["source"]: r for r in last.values() if r["status"] == "failed"}
    assert set(failed) == set(BAD_SOURCES)
    for source, why in BAD_SOURCES.items():
        assert why in failed[source]["error"]["message"], failed[source]
        assert failed[source]["error"]["expected"] is True  # a clear brandstudio error, not a crash


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The 50-row campaign run from the CLI, SIGKILLed once 10 clips are done, then resumed."""
    folder = tmp_path_factory.mktemp("fifty")
    path = write_campaign(folder, 'template = "testimonial"\n' + TINY_DEFAULTS, rows=ROWS)
    c = load_campaign(path)
    kill_cli_run_after(path, c.manifest_path, 10)
    before = {k: r for k, r in read_manifest(c.manifest_path).items() if r["status"] == "done"}
    half_way = {
        "done": before,
        "mtimes": {Path(r["output"]): Path(r["output"]).stat().st_mtime_ns for r in before.values()},
        "on_disk": {j.id: j.output.exists() for j in c.jobs},
    }
    for job in c.jobs:  # nothing half-written at an output path: absent, or a complete clip
        if job.output.exists():
            assert probe(job.output)["video_codec"] == "h264"
    t0 = time.perf_counter()
    res = runner.invoke(app, ["campaign", "run", str(path), "--quiet"])
    return c, half_way, res, time.perf_counter() - t0


def test_fifty_row_campaign_killed_and_resumed_from_the_cli(local_run):
    c, half_way, res, seconds = local_run
    print(f"resume of the 50-row campaign: {seconds:.1f}s")
    done_before = half_way["done"]
    assert 10 <= len(done_before) < 47
    assert res.exit_code == 3, res.output  # partial: 3 bad rows
    assert "47/50 done" in res.output and f"{len(done_before)} already done" in res.output
    assert "3 failed" in res.output and "Traceback" not in res.output
    for source in BAD_SOURCES:
        assert source in res.output

    last = check_disk_agrees(c.output_dir)
    assert sum(r["status"] == "done" for r in last.values()) == 47
    check_failures(last)
    assert len(audit_records(c.output_dir)) == 47
    for p, mtime in half_way["mtimes"].items():  # finished clips were not rendered again
        assert p.stat().st_mtime_ns == mtime
    started = [r["job"] for r in manifest_records(c.manifest_path) if r["status"] == "started"]
    for job_id in done_before:
        assert started.count(job_id) == 1
    statuses = [p.status for p in plan(c)]
    assert statuses.count("done") == 47 and statuses.count("failed") == 3
    for job in c.jobs:  # every clip decodes; failed jobs left nothing behind
        if last[job.id]["status"] == "done":
            assert probe(job.output)["video_codec"] == "h264"
        else:
            assert not any(job.output.parent.glob(job.output.stem + ".*"))


def test_same_campaign_on_a_local_ray_cluster_gives_the_same_clips(local_run, ray_cluster, tmp_path):
    """Two Ray workers, clips published to shared storage through fsspec (a file:// URL):
    the same 47 clips byte for byte, the same 3 failures, manifest and audit agree."""
    c_local = local_run[0]
    shared = tmp_path / "shared"
    body = (
        f'template = "testimonial"\noutput_dir = "{shared.as_uri()}/spring"\n'
        + TINY_DEFAULTS
        + "[ray]\nworkers = 2\n"
    )
    path = write_campaign(tmp_path / "ray", body, rows=ROWS)
    c = load_campaign(path)
    assert c.output_url == f"{shared.as_uri()}/spring" and c.jobs[0].url.startswith("file://")
    events = []
    summary = run(c, backend="ray", quiet=True, on_event=events.append)
    print(f"50-row campaign on Ray, 2 workers: {summary.seconds:.1f}s")
    assert summary.exit_code == 3 and len(summary.rendered) == 47 and len(summary.failed) == 3

    local = read_manifest(c_local.manifest_path)
    last = read_manifest(c.manifest_path)
    assert set(last) == set(local)  # same job ids
    check_failures(last)
    workers = {r["worker"] for r in last.values() if r["status"] == "done"}
    assert len(workers) == 2  # both actors rendered
    audit = {a["job"]: a for a in audit_records(c.output_dir)}
    for job in c.jobs:
        rec = last[job.id]
        if rec["status"] != "done":
            assert not (shared / "spring" / job.output.name).exists()
            continue
        clip = shared / "spring" / job.output.name
        assert rec["output"] == job.url and clip.stat().st_size == rec["size"]
        assert sha256(clip) == rec["sha256"] == local[job.id]["sha256"]  # the same clip as the local run
        assert (clip.parent / (clip.stem + ".qc.json")).exists() and (clip.parent / (clip.stem + ".srt")).exists()
        assert audit[job.id]["sha256"] == rec["sha256"] and audit[job.id]["output"] == job.url
        assert not job.output.exists()  # staging copies are gone
    assert len(audit) == 47
    assert not list(shared.rglob("*.part*"))
    assert {e.status for e in events} >= {"started", "stage", "done", "failed"}

    # planned again: done by what is on shared storage; a deleted clip is pending again
    statuses = [p.status for p in plan(c)]
    assert statuses.count("done") == 47
    victim = shared / "spring" / c.jobs[0].output.name
    victim.unlink()
    assert [p.status for p in plan(c)].count("pending") == 1
    res = runner.invoke(app, ["campaign", "run", str(path), "--ray", "auto", "--quiet", "--no-retry-failed"])
    assert res.exit_code == 3 and "(1 rendered now, 46 already done)" in res.output, res.output
    assert sha256(victim) == last[c.jobs[0].id]["sha256"]


def test_ray_backend_errors_are_clear(ray_cluster, tmp_path):
    path = write_campaign(tmp_path, 'template = "product-hero"\n' + TINY_DEFAULTS + "[ray]\nworkers = 3\n")
    with pytest.raises(CampaignError, match="3 workers asked for, but the cluster has room for 2") as e:
        run(path, backend="ray")
    assert e.value.field == "ray.workers"
    path = write_campaign(
        tmp_path / "b", 'template = "product-hero"\n' + TINY_DEFAULTS + "[ray]\ngpus_per_worker = 4\n"
    )
    with pytest.raises(CampaignError, match="no GPUs") as e:
        run(path, backend="ray")
    assert "gpus_per_worker = 0" in e.value.fix

    from brandstudio.distributed import RayExecutor

    stale = RayExecutor(AURORA, workers=1)
    stale.fingerprint = "0" * 64  # as if the driver had another copy of the profile
    with pytest.raises(CampaignError, match="is not the one the campaign was started with") as e:
        with stale:
            pass
    assert "same profile" in e.value.fix


def test_local_backend_publishes_to_an_fsspec_url(tmp_path):
    """memory:// stands in for a bucket: clips arrive whole (MP4 last), staging is emptied,
    the manifest records the URL and size, and a re-run finds them done."""
    import fsspec

    body = 'template = "product-hero"\noutput_dir = "memory://bucket/spring"\n' + TINY_DEFAULTS
    body += '[matrix]\nproduct = ["Night Roast", "Day Roast"]\n'
    path = write_campaign(tmp_path, body, name="mem")
    c = load_campaign(path)
    assert c.output_dir == (tmp_path / ".brandstudio" / "mem").resolve()
    summary = run(c, quiet=True)
    assert summary.exit_code == 0
    fs = fsspec.filesystem("memory")
    names = sorted(p.rsplit("/", 1)[1] for p in fs.ls("/bucket/spring", detail=False))
    stems = sorted(Path(j.url).stem for j in c.jobs)
    assert [n for n in names if n.endswith(".mp4")] == [s + ".mp4" for s in stems]
    assert {n.removeprefix(stems[0]) for n in names if n.startswith(stems[0])} >= {".mp4", ".srt", ".json"}
    for job in c.jobs:
        rec = read_manifest(c.manifest_path)[job.id]
        data = fs.cat(job.url.removeprefix("memory://"))
        assert rec["output"] == job.url and len(data) == rec["size"] and data[4:8] == b"ftyp"
        assert not job.output.exists()
    assert {p.status for p in plan(c)} == {"done"}
    assert len(run(c, quiet=True).skipped) == 2
    fs.rm("/bucket", recursive=True)


def test_campaign_run_help_documents_ray():
    res = runner.invoke(app, ["campaign", "run", "--help"])
    assert res.exit_code == 0 and "--ray" in res.output and "--workers" in res.output
