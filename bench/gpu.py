"""One prepared GPU run: every GPU measurement of brandstudio in under 8 minutes, appended with the
machine and date to bench/RESULTS.md (``bash bench/gpu.sh [--dry-run] [--no-append] [--only a14b,vae]``).

Models have random weights (speed does not depend on their values), built on the GPU from the
reference configs of ``/work/shared/design.md``; nothing is downloaded. Sections: ``grade`` (the
torch LUT grade of 1080p frames, host to host, vs ffmpeg ``lut3d`` on the CPU), ``sr`` (bf16
Real-ESRGAN x4plus on 832x480 frames), ``rife`` (RIFE 4.6 in bf16 making three frames between
each pair of 1080p frames, against the CPU ``flow`` interpolator on the same pairs), ``vae`` (the Wan2.1 VAE decoding an 832x480x81 clip),
``ti2v-5b`` and ``a14b`` (Wan2.2-TI2V-5B at 1280x704x121, T2V-A14B at 832x480x81: a warm-up and
2 timed denoising steps per speed preset and memory plan, as ``resolve_preset`` and
``PipelineRuntime`` apply them, extrapolated to the clip; peak memory next to ``estimate_memory``),
``lora-train`` (``lora train``'s GPU settings on one full-size A14B expert: bf16 base, gradient
checkpointing, a rank-32 float32 LoRA with AdamW at 832x480x33; steps/s, peak memory, the cost of
moving the idle expert off the GPU).

Each section runs in a process of its own (a fresh CUDA context and peak count; a crash or a
host out-of-memory kill costs that section only) under its own time budget; unused time rolls
over to the next. A configuration whose predicted time does not fit is skipped with a note; a
section still running at its deadline is stopped and keeps the rows it finished; a failure is
recorded, the next section runs, and the exit status is 1. ``--dry-run`` runs the same code
paths on the CPU at toy sizes and prints the report without appending it (CI does).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from functools import cached_property
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]  # this checkout's brandstudio, bench/

from demo_render import machine  # noqa: E402

from brandstudio.files import write_text_atomic  # noqa: E402
from brandstudio.generation.memory import GB  # noqa: E402
from brandstudio.generation.presets import resolve_preset  # noqa: E402
from brandstudio.profile.schema import ModelSection  # noqa: E402
from brandstudio.registry import Registry  # noqa: E402

RESULTS = REPO / "bench" / "RESULTS.md"
RESULTS_SECTION = "### Full-size Wan2.2-T2V-A14B and TI2V-5B on a GPU"
KILL_GRACE_S = 5.0
MIN_SECTION_S = 10.0  # a section with less time left than this is not started
DRY_RUN_BUDGET_S = 90.0  # per section: a net for a hang in CI (toy sizes take seconds)
WARMUP_STEPS, TIMED_STEPS = 1, 2  # the dry run times 1 step after 1 warm-up step
GPU_FLOPS = 4e14  # bf16 FLOP/s assumed to predict a model's first configuration (H100/H200 class)
HOST_BYTES_S = 8e9  # pageable host <-> GPU copies, to predict memory-plan changes
COMPILE_S = 60.0  # compile_repeated_blocks in the first step, predicted


# -- the models ------------------------------------------------------------------------------

_COMMON = dict(
    patch_size=(1, 2, 2), attention_head_dim=128, text_dim=4096, freq_dim=256, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
)  # fmt: skip
_WAN21_VAE = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                  temperal_downsample=[False, True, True])  # fmt: skip
_WAN22_VAE = dict(
    base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
    temperal_downsample=[False, True, True], is_residual=True, in_channels=12, out_channels=12,
    patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4, latents_mean=[0.0] * 48,
    latents_std=[1.0] * 48,
)  # fmt: skip
TOY_TRANSFORMER = dict(num_layers=2, num_attention_heads=2, attention_head_dim=16, ffn_dim=64)
TOY_VAE = dict(base_dim=8, num_res_blocks=1)
TOY_SIZE = (64, 64, 5)


@dataclasses.dataclass(frozen=True)
class WanModel:
    """A full-size Wan2.2 architecture from its reference config, and the size it is measured at."""

    name: str
    family: str
    experts: int
    transformer: dict
    vae: dict
    pipeline: dict
    size: tuple[int, int, int]
    vae_spatial: int

    def transformer_config(self, toy: bool) -> dict:
        return {**self.transformer, **(TOY_TRANSFORMER if toy else {})}

    def vae_config(self, toy: bool) -> dict:
        if not toy:
            return dict(self.vae)
        return {**self.vae, **TOY_VAE, **({"decoder_base_dim": 8} if "decoder_base_dim" in self.vae else {})}

    def tokens(self, width: int, height: int, frames: int) -> int:
        patch = 2 * self.vae_spatial
        return ((frames - 1) // 4 + 1) * (height // patch) * (width // patch)


MODELS = {
    "a14b": WanModel(
        "Wan2.2-T2V-A14B", "wan2.2-t2v-a14b", 2,
        dict(_COMMON, num_attention_heads=40, in_channels=16, out_channels=16, ffn_dim=13824, num_layers=40),
        _WAN21_VAE, dict(boundary_ratio=0.875), (832, 480, 81), 8,
    ),
    "ti2v-5b": WanModel(
        "Wan2.2-TI2V-5B", "wan2.2-ti2v-5b", 1,
        dict(_COMMON, num_attention_heads=24, in_channels=48, out_channels=48, ffn_dim=14336, num_layers=30),
        _WAN22_VAE, dict(expand_timesteps=True), (1280, 704, 121), 16,
    ),
}  # fmt: skip

# quality under every plan first: compiling (fast, balanced) cannot be undone and would speed up later rows
CONFIGS = (
    ("quality", "resident"), ("quality", "swap"), ("quality", "group-offload"),
    ("fast", "resident"), ("balanced", "resident"),
)  # fmt: skip
# A14B's group offloading pins a copy of both experts (57 GB) beside the pageable one: on a host with
# less than ~2x that free the OS may kill the process, so it runs in a process (a section) of its own
A14B_OFFLOAD = (("quality", "group-offload"),)
A14B_IN_MEMORY = tuple(c for c in CONFIGS if c not in A14B_OFFLOAD)
# balanced with FirstBlockCache: MagCache (the profile default) is calibrated on a whole run with
# the text encoder, which a random-weight run has neither the time nor the encoder for
BENCH_MODEL = ModelSection(balanced={"cache": "first-block"}, fast={"lora": "distill.safetensors"})


def preset_settings(name: str, family: str):
    """The preset as a profile resolves it for ``family``, less the distilled LoRA of ``fast`` (a
    fused LoRA costs nothing per step; random weights have nothing to distil)."""
    settings = resolve_preset(
        name, family, BENCH_MODEL, fast_lora_path=Path("distill.safetensors"), fast_lora_sha256="0" * 64
    )
    return dataclasses.replace(settings, fast_lora=None)


# -- what a section's process reports -----------------------------------------------------------


@dataclasses.dataclass
class Bench:
    """What a section's process is given: toy sizes or not, its deadline, where its events go.

    Events are JSON lines (``table``, ``row``, ``note``, ``failure``) appended one by one, so the
    rows finished before a section is stopped at its deadline survive it.
    """

    toy: bool
    deadline: float
    events: Path
    title: str

    @property
    def device(self) -> str:
        return "cpu" if self.toy else "cuda"

    @cached_property
    def torch(self):
        import torch  # heavy: only the sections' processes import it

        return torch

    def left(self) -> float:
        return self.deadline - time.time()

    def emit(self, **event) -> None:
        with open(self.events, "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")

    def table(self, title: str, columns: str) -> None:
        """Start a table; ``columns`` are separated by ``|``."""
        self.emit(table=title, columns=[c.strip() for c in columns.split("|")])

    def row(self, *cells) -> None:
        self.emit(row=[str(c) for c in cells])

    def note(self, text: str) -> None:
        self.emit(note=text)

    def failure(self, what: str, error: BaseException) -> None:
        self.emit(failure=f"{what}: {type(error).__name__}: {' '.join(str(error).split())[:300]}")

    def fits(self, what: str, predicted_s: float) -> bool:
        """Whether ``predicted_s`` fits before the deadline; if not, a note that ``what`` is skipped."""
        if predicted_s <= self.left() - 2.0:
            return True
        self.note(f"skipped {what}: predicted {predicted_s:.0f} s, {max(self.left(), 0):.0f} s left")
        return False

    # timing: CUDA events on a GPU (what the kernels took, not when Python queued them), else perf_counter

    def mark(self):
        if self.toy:
            return time.perf_counter()
        event = self.torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def seconds(self, start, end) -> float:
        if self.toy:
            return end - start
        end.synchronize()
        return start.elapsed_time(end) / 1000.0

    def time(self, fn: Callable[[], object]) -> tuple[float, object]:
        """(seconds, result) of ``fn()``."""
        start = self.mark()
        result = fn()
        return self.seconds(start, self.mark()), result

    def reset_peak(self) -> None:
        if not self.toy:
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_gb(self) -> str:
        return "-" if self.toy else f"{self.torch.cuda.max_memory_allocated() / GB:.1f}"


@dataclasses.dataclass(frozen=True)
class Section:
    """One measurement: a title (shown when it reports nothing), its budget on the GPU, its function."""

    title: str
    budget_s: float
    measure: Callable[[Bench], None]


SECTIONS: Registry[Section] = Registry("GPU measurement", "bench/gpu.sh --only")


# -- the run: a process per section, one Markdown report --------------------------------------------


def run_section(name: str, deadline: float, toy: bool, workdir: Path) -> tuple[list[dict], str]:
    """Run section ``name`` in a process of its own until ``deadline``: its events and a status line."""
    events, log = workdir / f"{name}.jsonl", workdir / f"{name}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--section", name, "--deadline", str(deadline),
           "--events", str(events), *(["--dry-run"] if toy else [])]  # fmt: skip
    start = time.time()
    with open(log, "wb") as out:
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = child.wait(timeout=max(deadline - start, 1.0) + KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # its own session: the section and what it started
            child.wait()
            code = None
    took = time.time() - start
    lines = events.read_text(encoding="utf-8").splitlines() if events.exists() else []
    if code == 0:
        status = f"ran in {took:.0f} s"
    elif code is None:
        status = f"stopped at its deadline after {took:.0f} s; the rows above are the ones it finished"
    else:
        text = log.read_text(errors="replace")
        last = [line for line in text.splitlines() if line.strip()][-1:] or ["no output"]
        killed = f", killed by signal {-code} (host out of memory?)" if code < 0 else ""
        status = f"FAILED (exit {code}{killed}) after {took:.0f} s: {last[0][:300]}"
        sys.stderr.write(f"--- section {name} failed; the end of its log:\n{text[-4000:]}\n")
    return [json.loads(line) for line in lines], status


def section_markdown(name: str, events: list[dict], status: str) -> list[str]:
    """A section's tables, then its notes and status (level-5 headings: they sit under a run's)."""
    out, notes, columns = [], [], 0
    for event in events:
        if "table" in event:
            out += notes
            notes, columns = [], len(event["columns"])
            header = f"| {' | '.join(event['columns'])} |"
            out += ["", f"##### {event['table']}", "", header, "|---" * columns + "|"]
        elif "row" in event:
            out.append(f"| {' | '.join(event['row'] + [''] * (columns - len(event['row'])))} |")
        else:  # under the table they were written during, not inside it
            notes += ["", f"FAILED {event['failure']}" if "failure" in event else event["note"]]
    if not any("table" in e for e in events):
        out = ["", f"##### {SECTIONS[name].title}"]
    return [*out, *notes, "", f"`{name}`: {status}."]


def machine_line(toy: bool) -> str:
    import torch  # heavy; reading the device's properties creates no CUDA context

    if toy:
        return f"dry run on the CPU at toy sizes, {machine()}"
    props = torch.cuda.get_device_properties(0)
    return (f"{props.name}, {props.total_memory / GB:.0f} GB, torch {torch.__version__}, CUDA {torch.version.cuda}, "
            f"{os.cpu_count()} CPU cores")  # fmt: skip


def run_all(names: list[str], toy: bool) -> tuple[str, bool]:
    """Every section in ``names``, one after the other: the Markdown report, and whether one failed."""
    budgets = [DRY_RUN_BUDGET_S if toy else SECTIONS[n].budget_s for n in names]
    start, report, failed = time.time(), [], False
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        for i, name in enumerate(names):
            deadline = start + sum(budgets[: i + 1])  # what a section leaves unused rolls over to the next
            if deadline - time.time() < MIN_SECTION_S:
                report += section_markdown(name, [], "skipped: the sections before it used its time")
                continue
            events, status = run_section(name, deadline, toy, Path(tmp))
            failed |= status.startswith("FAILED") or any("failure" in e for e in events)
            report += section_markdown(name, events, status)
    head = [
        f"#### GPU run, {date.today().isoformat()}: {machine_line(toy)}",
        "",
        f"`bash bench/gpu.sh{' --dry-run' if toy else ''}`: {len(names)} measurements in {time.time() - start:.0f} s "
        f"(budget {sum(budgets):.0f} s). Random weights throughout: speed does not depend on their values.",
    ]  # fmt: skip
    return "\n".join(head + report) + "\n", failed


def insert_into_section(text: str, heading: str, block: str) -> str:
    """``text`` with ``block`` at the end of the section under ``heading`` (before the next heading
    of the same or a higher level); the section is added at the end when missing.

    Example:
        >>> insert_into_section("## A\\n\\nold\\n\\n## B\\n", "## A", "new")
        '## A\\n\\nold\\n\\nnew\\n\\n## B\\n'
    """
    lines = text.splitlines()
    if heading not in lines:
        lines += ["", heading]
    same_or_higher = re.compile(f"#{{1,{heading.index(' ')}}} ")
    end = lines.index(heading) + 1
    while end < len(lines) and not same_or_higher.match(lines[end]):
        end += 1
    head, tail = "\n".join(lines[:end]).rstrip("\n"), "\n".join(lines[end:])
    return f"{head}\n\n{block.strip()}\n" + (f"\n{tail}\n" if tail else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="the same code paths on the CPU at toy sizes")
    ap.add_argument("--append", action=argparse.BooleanOptionalAction, default=None,
                    help="append the report to --results (default: on a GPU yes, in a dry run no)")  # fmt: skip
    ap.add_argument("--results", type=Path, default=RESULTS, help="the Markdown file to append to")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    ap.add_argument("--section", help=argparse.SUPPRESS)  # what a section's own process is given
    ap.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--events", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.section:
        section = SECTIONS[SECTIONS.check(args.section)]
        section.measure(Bench(args.dry_run, args.deadline, args.events, section.title))
        return 0

    import torch  # heavy

    if not args.dry_run and not torch.cuda.is_available():
        print("bench/gpu.sh: no CUDA device here; run it on a GPU machine, or pass --dry-run to run the "
              "same code paths at toy sizes on the CPU", file=sys.stderr)  # fmt: skip
        return 2
    try:
        names = [SECTIONS.check(n.strip()) for n in args.only.split(",") if n.strip()]
    except ValueError as e:
        print(f"bench/gpu.sh: --only {args.only!r}: {e}", file=sys.stderr)
        return 2
    report, failed = run_all(names, args.dry_run)
    print(report)
    if args.append if args.append is not None else not args.dry_run:
        old = args.results.read_text(encoding="utf-8")
        write_text_atomic(args.results, insert_into_section(old, RESULTS_SECTION, report))
        print(f"bench/gpu.sh: appended to {args.results}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.modules.setdefault("gpu", sys.modules[__name__])  # gpu_sections imports this module as `gpu`
    import gpu_sections  # noqa: F401 - registers the sections

    sys.exit(main())
