"""Campaign throughput: a 50-job campaign, one process vs the Ray backend, and the cost of resuming.

    python bench/campaign.py                 # 50 jobs, Ray with 2 workers (logical GPUs)
    python bench/campaign.py --jobs 20 --workers 2 --markdown

The campaign is the test suite's 50-row testimonial brief (three products, so three scenes
shared through the scene cache; no bad rows here) at the tiny model's sizes (0.25 s clips,
64 px). Each configuration starts from an empty output folder and an empty scene cache.

Measured:
- ``local``: ``brandstudio campaign run`` in a fresh process (model load included);
- ``ray``: the same in a fresh process with ``--ray local`` on a Ray instance started with
  ``num_gpus=WORKERS`` logical GPUs (Ray start-up and one model load per worker included), and
  its steady state (jobs/s between the first and the last finished job);
- ``resume``: a local run SIGKILLed once half the jobs are done, then restarted: the restart's
  wall time against the time the same number of jobs take in an uninterrupted run, and the
  jobs rendered twice (should be 0; the one being rendered at the kill is rendered again).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "brand_profiles" / "aurora-coffee"


def write_campaign(folder: Path, n: int, workers: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["product,quote,stars,seed"]
    for i in range(1, n + 1):
        rows.append(f"Roast {i % 3},Lovely cup number {i},{3 + i % 3},{i % 3 + 1}")
    (folder / "briefs.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    path = folder / "bench.toml"
    path.write_text(
        f'[campaign]\nname = "bench"\nprofile = "{PROFILE.as_posix()}"\ntemplate = "testimonial"\n'
        'csv = "briefs.csv"\n[defaults]\nduration = 0.25\nresolution = 64\naspect = "1:1"\n'
        f"[ray]\nworkers = {workers}\n",
        encoding="utf-8",
    )
    return path


def manifest(folder: Path) -> list[dict]:
    path = folder / "renders" / "bench" / "manifest.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def env_for(folder: Path) -> dict:
    return {**os.environ, "BRANDSTUDIO_SCENE_CACHE": str(folder / "scenes")}


RAY_DRIVER = """
import sys, ray
ray.init(num_cpus={cpus}, num_gpus={workers}, include_dashboard=False, log_to_driver=False,
         logging_level="ERROR", object_store_memory=100 * 1024 * 1024)
from brandstudio.campaign import run
s = run(sys.argv[1], backend="ray", quiet=True)
sys.exit(s.exit_code)
"""


def timed_run(folder: Path, path: Path, backend: str, workers: int) -> dict:
    if backend == "ray":
        cmd = [sys.executable, "-c", RAY_DRIVER.format(cpus=os.cpu_count(), workers=workers), str(path)]
    else:
        cmd = [sys.executable, "-m", "brandstudio.cli", "campaign", "run", str(path), "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env_for(folder), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{backend} run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    recs = manifest(folder)
    done = [r for r in recs if r["status"] == "done"]
    times = sorted(dt.datetime.fromisoformat(r["time"]) for r in done)
    steady = (len(times) - 1) / (times[-1] - times[0]).total_seconds() if len(times) > 1 else float("nan")
    return {"wall": wall, "jobs": len(done), "steady": steady, "workers": len({r.get("worker") for r in done})}


def resume_run(folder: Path, path: Path, n: int) -> dict:
    cmd = [sys.executable, "-m", "brandstudio.cli", "campaign", "run", str(path), "--quiet"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env_for(folder), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    while proc.poll() is None and sum(r["status"] == "done" for r in manifest(folder)) < n // 2:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {r["job"] for r in manifest(folder) if r["status"] == "done"}
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env_for(folder), check=True, capture_output=True)
    wall = time.perf_counter() - t0
    started_again = [r["job"] for r in manifest(folder) if r["status"] == "started"]
    twice = sum(started_again.count(j) > 1 for j in done_before)
    return {"done_before": len(done_before), "wall": wall, "rendered_twice": twice}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--markdown", action="store_true", help="print a RESULTS.md section")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-campaign-"))
    try:
        rows = {}
        for backend in ("local", "ray"):
            folder = root / backend
            rows[backend] = timed_run(folder, write_campaign(folder, args.jobs, args.workers), backend, args.workers)
            print(backend, rows[backend], flush=True)
        folder = root / "resume"
        res = resume_run(folder, write_campaign(folder, args.jobs, args.workers), args.jobs)
        print("resume", res, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    local, ray_ = rows["local"], rows["ray"]
    per_job = local["wall"] / args.jobs
    left = args.jobs - res["done_before"]
    from demo_render import machine as describe

    machine = describe()
    lines = [
        f"### Campaign, {args.jobs} jobs ({dt.date.today().isoformat()}, {machine})",
        "",
        f"`python bench/campaign.py --jobs {args.jobs} --workers {args.workers}`",
        "",
        "| run | wall s | jobs | jobs/s (whole run) | jobs/s (steady state) | vs local |",
        "|---|---|---|---|---|---|",
        f"| local backend, 1 process | {local['wall']:.1f} | {local['jobs']} | {local['jobs'] / local['wall']:.2f} "
        f"| {local['steady']:.2f} | 1.00× |",
        f"| Ray backend, {args.workers} workers ({ray_['workers']} rendered) | {ray_['wall']:.1f} | {ray_['jobs']} "
        f"| {ray_['jobs'] / ray_['wall']:.2f} | {ray_['steady']:.2f} | {local['wall'] / ray_['wall']:.2f}× |",
        "",
        f"Resume after a SIGKILL with {res['done_before']} of {args.jobs} done: the restart took "
        f"{res['wall']:.1f} s for the {left} jobs left (an uninterrupted run spends about "
        f"{per_job * left:.1f} s on as many jobs, model load included); jobs rendered twice: "
        f"{res['rendered_twice']}.",
    ]
    print("\n".join(lines) if args.markdown else json.dumps({"rows": rows, "resume": res}, indent=2))


if __name__ == "__main__":
    main()
