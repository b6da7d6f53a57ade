"""One prepared GPU run: every GPU measurement of brandstudio in under 8 minutes, appended with the
machine and date to bench/RESULTS.md (``bash bench/gpu.sh [--dry-run] [--no-append] [--only a14b,vae]``).

Models have random weights (speed does not depend on their values), built on the GPU from the
reference configs of ``/work/shared/design.md``; nothing is downloaded. Sections: ``grade`` (the
torch LUT grade of 1080p frames, host to host, vs ffmpeg ``lut3d`` on the CPU), ``sr`` (bf16
Real-ESRGAN x4plus on 832x480 frames), ``vae`` (the Wan2.1 VAE decoding an 832x480x81 clip),
``ti2v-5b`` and ``a14b`` (Wan2.2-TI2V-5B at 1280x704x121, T2V-A14B at 832x480x81: a warm-up and
2 timed denoising steps per speed preset and memory plan, as ``resolve_preset`` and
``PipelineRuntime`` apply them, extrapolated to the clip; peak memory next to ``estimate_memory``).

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
from functools import cached_property, partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]  # this checkout's brandstudio, bench/

from demo_render import machine  # noqa: E402
from grade import LUT_PATH  # noqa: E402
from grade import clip as test_frames  # noqa: E402
from grade import ffmpeg as ffmpeg_lut3d  # noqa: E402

from brandstudio.files import write_text_atomic  # noqa: E402
from brandstudio.generation.base import GenerationSpec  # noqa: E402
from brandstudio.generation.memory import A14B_GEOMETRY, GB, estimate_memory  # noqa: E402
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


# -- grade, sr, vae -----------------------------------------------------------------------------


def measure_grade(bench: Bench) -> None:
    from brandstudio.post.grade import read_lut
    from brandstudio.post.grade_torch import grade_uint8_torch  # imports torch at module level

    n, h, w = (4, 64, 64) if bench.toy else (32, 1080, 1920)
    frames, lut = test_frames(n, h, w), read_lut(LUT_PATH)
    grade_uint8_torch(frames[:1], lut, 1.0, "tetrahedral", bench.device)  # warm-up: kernels, LUT upload
    s, graded = bench.time(lambda: grade_uint8_torch(frames, lut, 1.0, "tetrahedral", bench.device))
    reference, s_ffmpeg = ffmpeg_lut3d(frames)
    diff = int(abs(graded.astype(int) - reference.astype(int)).max())
    bench.table(f"LUT grade, {n} frames {w}x{h} 8-bit, 33-point tetrahedral", "implementation | frames/s | "
                "vs ffmpeg | max diff to ffmpeg (8-bit levels)")  # fmt: skip
    bench.row(
        f"torch on {bench.device}, upload + grade + download", f"{n / s:.1f}", f"{s_ffmpeg / s:.2f}x", diff
    )
    bench.row("ffmpeg lut3d on the CPU, raw frames piped in and out", f"{n / s_ffmpeg:.1f}", "1.00x", 0)


def measure_sr(bench: Bench) -> None:
    import torch  # heavy
    from safetensors.torch import save_file

    from brandstudio.post.sr import RealESRGAN, RRDBNet  # imports torch at module level

    arch = dict(num_feat=8, num_block=1, num_grow_ch=4) if bench.toy else dict(num_feat=64, num_block=23)
    (w, h), n = ((64, 64), 2) if bench.toy else ((832, 480), 4)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x4plus.safetensors"
        save_file(RRDBNet(scale=4, **arch).state_dict(), str(path))
        model = RealESRGAN(path, tile=256, tile_pad=16, device=bench.device)  # the upscale stage's tiles
    frames = test_frames(n, h, w)
    model.upscale(frames[:1])  # warm-up: cuDNN picks its kernels
    bench.reset_peak()
    s = bench.time(lambda: model.upscale(frames))[0] / n
    bench.table(f"Real-ESRGAN x4plus (RRDBNet {arch['num_feat']}x{arch['num_block']}), {w}x{h} -> {4 * w}x{4 * h}, "
                f"{model.dtype}, 256 px tiles", "frames | s/frame | frames/s | 81-frame clip s | peak GB")  # fmt: skip
    bench.row(n, f"{s:.3f}", f"{1 / s:.2f}", f"{81 * s:.1f}", bench.peak_gb())


def measure_vae(bench: Bench) -> None:
    import torch  # heavy
    from diffusers import AutoencoderKLWan

    model = MODELS["a14b"]
    w, h, f = TOY_SIZE if bench.toy else model.size
    with torch.device(bench.device):
        vae = AutoencoderKLWan(**model.vae_config(bench.toy)).eval().requires_grad_(False)
    latents = torch.randn(1, model.vae["z_dim"], (f - 1) // 4 + 1, h // 8, w // 8, device=bench.device)
    with torch.inference_mode():
        vae.decode(latents[:, :, :1, :8, :8])  # warm-up: cuDNN picks its kernels
        bench.reset_peak()
        s = bench.time(lambda: vae.decode(latents))[0]
    act = estimate_memory(A14B_GEOMETRY, w, h, f).vae_activations
    bench.table(f"Wan2.1 VAE decode (fp32), one {w}x{h}x{f} clip",
                "latents | s | frames/s | peak GB | estimate_memory's VAE activations GB")  # fmt: skip
    shape = "x".join(map(str, latents.shape[1:]))
    bench.row(shape, f"{s:.2f}", f"{f / s:.1f}", bench.peak_gb(), f"{act / GB:.1f}")


# -- a14b, ti2v-5b: denoising steps per preset and memory plan ------------------------------------


def build_pipeline(model: WanModel, device: str, toy: bool):
    """A ``WanPipeline`` of random weights, each expert built directly on ``device`` (its init kernels
    run there: no CPU init, no host copy), bf16 on CUDA with diffusers' fp32 modules kept fp32, the
    VAE in fp32; no tokenizer or text encoder (the bench passes ``prompt_embeds``)."""
    import torch  # heavy
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

    experts, default = [], torch.get_default_dtype()
    for i in range(model.experts):
        torch.manual_seed(i)
        torch.set_default_dtype(torch.float32 if toy else torch.bfloat16)
        try:
            with torch.device(device):
                expert = WanTransformer3DModel(**model.transformer_config(toy)).eval().requires_grad_(False)
        finally:
            torch.set_default_dtype(default)
        for name, module in expert.named_modules():  # as from_pretrained keeps them
            if any(k in name.split(".") for k in expert._keep_in_fp32_modules):
                module.float()
        experts.append(expert)
    with torch.device(device):
        vae = AutoencoderKLWan(**model.vae_config(toy)).eval().requires_grad_(False)
    sched = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0)
    pipe = WanPipeline(tokenizer=None, text_encoder=None, vae=vae, scheduler=sched, transformer=experts[0],
                       transformer_2=experts[1] if len(experts) > 1 else None, **model.pipeline)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


@dataclasses.dataclass
class RandomWeightsModel:
    """What :class:`PipelineRuntime` needs of a generator (its ``LoadedModel``), around a pipeline built here."""

    pipeline: object
    device: str
    model_id: str
    loras: tuple = ()

    def cache_identity(self) -> dict:
        return {"model_id": self.model_id, "weights": "random"}


class StopSteps(Exception):
    """Raised from the step callback once the timed steps are done: the rest of the clip is skipped."""


def step_times(pipe, spec: GenerationSpec, embeds, bench: Bench, steps: int) -> list[float]:
    """Run the first ``steps`` steps of ``spec`` (latents only): the seconds between their ends."""
    import torch  # heavy

    marks = []

    def on_step_end(pipe, i, t, kwargs):
        marks.append(bench.mark())
        if len(marks) >= steps:
            raise StopSteps
        return kwargs

    cfg = spec.guidance_high > 1.0
    pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, flow_shift=spec.flow_shift)
    extra = {"guidance_scale_2": spec.guidance_low} if pipe.config.get("boundary_ratio") else {}
    try:
        pipe(
            prompt_embeds=embeds[0], negative_prompt_embeds=embeds[1] if cfg else None,
            height=spec.height, width=spec.width, num_frames=spec.num_frames, num_inference_steps=spec.steps,
            guidance_scale=spec.guidance_high, generator=torch.Generator().manual_seed(0), output_type="latent",
            callback_on_step_end=on_step_end, **extra,
        )  # fmt: skip
    except StopSteps:
        pass
    return [bench.seconds(a, b) for a, b in zip(marks, marks[1:], strict=False)]


def expert_crossing_s(pipe, embeds, bench: Bench) -> float:
    """Seconds of one expert swap under ``swap`` (``transformer`` out to the CPU, ``transformer_2``
    in): a one-token forward of ``transformer_2`` fires the plan's hook."""
    import torch  # heavy

    expert = pipe.transformer_2
    x = torch.zeros(1, expert.config.in_channels, 1, 2, 2, dtype=embeds[0].dtype, device=embeds[0].device)
    t = torch.zeros(1, device=x.device)
    with torch.no_grad():  # not inference_mode: the weights it moves are used outside it afterwards
        return bench.time(
            lambda: expert(hidden_states=x, timestep=t, encoder_hidden_states=embeds[0][:, :1])
        )[0]


def seconds(value: float) -> str:
    """3 significant digits below 10 s (toy steps take milliseconds), tenths above."""
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def predicted_step_s(model: WanModel, width: int, height: int, frames: int) -> float:
    """One CFG step before any is measured: two passes of ~``2 params tokens + 4 layers tokens^2 dim``
    FLOPs at :data:`GPU_FLOPS`."""
    cfg, tokens = model.transformer, model.tokens(width, height, frames)
    dim = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    params = cfg["num_layers"] * (8 * dim * dim + 2 * dim * cfg["ffn_dim"])
    return 2 * (2 * params * tokens + 4 * cfg["num_layers"] * tokens**2 * dim) / GPU_FLOPS


def measure_config(bench: Bench, runtime, spec: GenerationSpec, settings, plan: str, embeds, steps) -> dict:
    """One preset under one memory plan: s/step, clip s, peak and estimated memory, notes."""
    pipe = runtime.gen.pipeline
    # 1. the preset and the plan, as a render applies them
    runtime.configure(settings, memory=plan)
    runtime.prepare(spec)
    # 2. the steps
    bench.reset_peak()
    times = step_times(pipe, spec, embeds, bench, steps)
    per_step = sum(times) / len(times)
    clip_s, notes = spec.steps * per_step, []
    # 3. what a clip costs beyond its steps
    if plan == "swap" and pipe.transformer_2 is not None:
        crossing = expert_crossing_s(pipe, embeds, bench)
        clip_s += 2 * crossing
        notes.append(f"+ 2 expert swaps of {crossing:.1f} s per clip")
    elif plan == "swap":
        notes.append("one expert, no text encoder: nothing swaps during a clip")
    if settings.cache.kind != "none":
        notes.append(f"{settings.cache.kind} cache hook on (random weights make its skips meaningless)")
    rec = runtime.record()
    return {"s_step": per_step, "clip_s": clip_s, "peak": bench.peak_gb(), "notes": notes,
            "estimate": runtime.estimate(spec).need[plan] / GB,
            "runtime": f"attention {rec['attention']}, compiled {rec['compiled']}"}  # fmt: skip


def measure_transformer(kind: str, configs: tuple[tuple[str, str], ...], bench: Bench) -> None:
    import torch  # heavy

    from brandstudio.generation.runtime import PipelineRuntime

    model = MODELS[kind]
    w, h, f = TOY_SIZE if bench.toy else model.size
    warmup, timed_steps = (1, 1) if bench.toy else (WARMUP_STEPS, TIMED_STEPS)
    # 1. the pipeline, on the GPU, and the runtime that applies presets and plans to it
    start = time.perf_counter()
    pipe = build_pipeline(model, bench.device, bench.toy)
    if not bench.toy:
        torch.cuda.synchronize()
    built_s = time.perf_counter() - start
    runtime = PipelineRuntime(RandomWeightsModel(pipe, bench.device, kind), memory="resident")
    expert_bytes = sum(p.numel() * p.element_size() for p in pipe.transformer.parameters())
    seeds, dtype = torch.Generator().manual_seed(0), pipe.transformer.dtype
    embeds = [torch.randn(1, 512, 4096, generator=seeds).to(bench.device, dtype) for _ in "+-"]
    bench.table(f"{bench.title}, {model.experts} expert(s), {w}x{h}x{f} ({model.tokens(w, h, f):,} tokens), "
                f"{str(dtype).removeprefix('torch.')}", "preset | memory plan | sampler | s/step | "
                "clip s (steps x s/step) | peak GB | estimate GB | runtime | notes")  # fmt: skip
    bench.note(
        f"Built on {bench.device} in {built_s:.1f} s ({model.experts} x {expert_bytes / GB:.1f} GB of weights); "
        f"s/step: the mean of {timed_steps} timed step(s) after {warmup} warm-up step(s), latents only."
    )
    # 2. each preset and plan, skipped when its predicted time does not fit the budget
    step_s = 0.1 if bench.toy else predicted_step_s(model, w, h, f)
    for preset, plan in configs:
        settings = preset_settings(preset, model.family)
        spec = GenerationSpec("", "", 0, w, h, f, settings.steps, settings.guidance_high, settings.guidance_low,
                              settings.flow_shift)  # fmt: skip
        cfg, steps = spec.guidance_high > 1.0, min(warmup + timed_steps, spec.steps)
        sampler = f"{spec.steps} steps, {'CFG' if cfg else 'no CFG'}"
        moves = {"swap": 2.5, "group-offload": 2}.get(plan, 0) * model.experts * expert_bytes / HOST_BYTES_S
        compiles = settings.compile == "auto" and not bench.toy and not runtime.compiled
        predicted = steps * step_s * (1 if cfg else 0.5) + (0 if bench.toy else moves) + COMPILE_S * compiles
        if not bench.fits(f"{preset} / {plan}", predicted):
            continue
        try:
            r = measure_config(bench, runtime, spec, settings, plan, embeds, steps)
        except torch.OutOfMemoryError:
            bench.row(preset, plan, sampler, "OOM")
            runtime.configure(memory="resident")
            continue
        except Exception as e:  # recorded; the next configuration runs
            bench.row(preset, plan, sampler, "failed")
            bench.failure(f"{model.name} {preset} / {plan}", e)
            continue
        step_s = r["s_step"] if cfg else step_s
        bench.row(preset, plan, sampler, seconds(r["s_step"]), seconds(r["clip_s"]), r["peak"],
                  f"{r['estimate']:.1f}", r["runtime"], "; ".join(r["notes"]))  # fmt: skip


for name, title, budget_s, measure in (
    ("grade", "LUT grade, torch on the GPU vs ffmpeg lut3d", 20.0, measure_grade),
    ("sr", "Real-ESRGAN x4plus, bf16", 25.0, measure_sr),
    ("vae", "Wan2.1 VAE decode", 40.0, measure_vae),
    ("ti2v-5b", "Wan2.2-TI2V-5B", 100.0, partial(measure_transformer, "ti2v-5b", CONFIGS)),
    ("a14b", "Wan2.2-T2V-A14B", 175.0, partial(measure_transformer, "a14b", A14B_IN_MEMORY)),
    ("a14b-offload", "Wan2.2-T2V-A14B under group-offload", 75.0, partial(measure_transformer, "a14b", A14B_OFFLOAD)),
):  # fmt: skip
    SECTIONS.register(name, Section(title, budget_s, measure))


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
    sys.exit(main())
