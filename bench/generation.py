"""Benchmark: seconds per denoising step and peak memory, per speed preset and memory plan.

CPU part (always runs): the offline ``tiny`` two-expert model at 256x144x33 (1,296 tokens),
``quality`` / ``balanced`` (MagCache, calibrated per expert) with 8 steps and CFG, ``fast`` with
a tiny random step-distill LoRA (4 steps, no CFG, fused into both experts), each under the
``resident``, ``swap`` and ``group-offload`` memory plans; and plain diffusers ``WanPipeline``
with the same settings, measured in the same process, as the reference (ratio column).

GPU part (runs when CUDA is available): the full-size Wan2.2-T2V-A14B (two 14B experts) and
TI2V-5B transformers and VAEs built from their configs (design.md "Reference facts") with
random bf16 weights - speed does not depend on the weights' values - and random
``prompt_embeds`` instead of the text encoder, at 1280x720x81 and 832x480x81 (TI2V-5B needs
multiples of 32: 1280x704). Per row: plain ``WanPipeline`` (resident, PyTorch SDPA), then
brandstudio's presets under each plan. ``s/step`` is measured over a few steady steps after a
warm-up step (the run is interrupted through ``callback_on_step_end``); ``fast`` runs the whole
4-step clip including VAE decode. Anchors: the official repo's 1041.5 s for T2V-A14B 720p on one
H100 with offload (26 s per step over 40 steps), and the compute floor of ~13 s per CFG step at
720p on an H100 (13 PFLOP per step). Random weights make the cache hooks' skip decisions
meaningless, so on the GPU ``balanced`` is measured without its cache hook (compile + attention
kernel only); a fused LoRA costs nothing per step, so ``fast`` runs its sampler (4 steps, no CFG)
without one.

Prints Markdown tables for bench/RESULTS.md.

    python bench/generation.py [--repeat 2]                       # CPU part (+ GPU part on CUDA)
    python bench/generation.py --gpu --model a14b --size 720p     # one GPU slice (fits a 10-minute run)
    python bench/generation.py --gpu-dry-run                       # the GPU code path at toy sizes on a CPU
    torchrun --nproc-per-node 2 bench/generation.py --gpu --model a14b --size 720p --parallel ulysses:2
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]  # this checkout's brandstudio

from demo_render import machine  # noqa: E402

EXPERTS = ("transformer", "transformer_2")


# -- measuring --------------------------------------------------------------------------------


class StepClock:
    """Times the denoising loop from the experts' forward hooks: the start of the first expert
    call to the end of the last one (text encoding and VAE decode excluded)."""

    def __init__(self, pipe, sync=lambda: None) -> None:
        self.sync, self.first, self.last, self.calls = sync, None, None, 0
        self.handles = []
        for name in EXPERTS:
            expert = getattr(pipe, name, None)
            if expert is not None:
                self.handles.append(expert.register_forward_pre_hook(self._pre))
                self.handles.append(expert.register_forward_hook(self._post))

    def _pre(self, module, args) -> None:
        if self.first is None:
            self.sync()
            self.first = time.perf_counter()

    def _post(self, module, args, out) -> None:
        self.sync()
        self.last = time.perf_counter()
        self.calls += 1

    def span(self) -> float:
        return (self.last or 0.0) - (self.first or 0.0)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


class PeakRSS:
    """Samples this process's resident set size (``/proc/self/statm``) every 2 ms in a thread."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = self.start = self.now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self.now())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def tail_block_calls(pipe) -> tuple[list, list]:
    """Counts calls of each expert's last block's FFN (skipped when a cache hook skips the step)."""
    counts, handles = [], []
    for name in EXPERTS:
        expert = getattr(pipe, name, None)
        if expert is not None:
            handles.append(expert.blocks[-1].ffn.register_forward_pre_hook(lambda m, a: counts.append(1)))
    return counts, handles


# -- CPU part: the tiny model -----------------------------------------------------------------


def cpu_part(repeat: int) -> list[str]:
    import torch
    from diffusers import WanPipeline

    from brandstudio.generation.base import GenerationSpec
    from brandstudio.generation.presets import resolve_preset
    from brandstudio.generation.tiny import make_tiny_lora, tiny_model_dir
    from brandstudio.generation.wan import WanGenerator
    from brandstudio.profile.schema import ModelSection

    width, height, frames = 256, 144, 33
    tmp = Path(tempfile.mkdtemp(prefix="bench-generation-"))
    lora = make_tiny_lora(tmp / "fast.safetensors", seed=11, scale=0.2)
    model = ModelSection(
        steps=8, flow_shift=5.0, guidance_high=4.0, guidance_low=3.0, balanced={"cache": "mag"},
        fast={"lora": "fast.safetensors"},
    )  # fmt: skip
    base = GenerationSpec("espresso pouring into a glass cup, morning light", "blurry", 0, width, height, frames,
                          8, 4.0, 3.0, 5.0)  # fmt: skip

    # 1. plain diffusers WanPipeline, the same settings
    pipe = WanPipeline.from_pretrained(tiny_model_dir(), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)

    def plain_call():
        return pipe(
            prompt=base.prompt, negative_prompt=base.negative_prompt, height=height, width=width,
            num_frames=frames, num_inference_steps=base.steps, guidance_scale=base.guidance_high,
            guidance_scale_2=base.guidance_low, generator=torch.Generator().manual_seed(0), output_type="np",
        )  # fmt: skip

    pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, flow_shift=base.flow_shift)
    plain = measure_cpu(pipe, plain_call, base.steps, repeat)

    # 2. brandstudio: each preset under each memory plan
    gen = WanGenerator("tiny", device="cpu")
    rows = [
        row_cpu(
            "plain diffusers `WanPipeline`",
            "resident",
            plain,
            plain,
            "reference: same settings, 8 steps, CFG",
        )
    ]
    for preset in ("quality", "balanced", "fast"):
        settings = resolve_preset(preset, gen.model_family, model, fast_lora_path=lora)
        spec = dataclasses.replace(
            base, steps=settings.steps, guidance_high=settings.guidance_high,
            guidance_low=settings.guidance_low, flow_shift=settings.flow_shift,
        )  # fmt: skip
        for plan in ("resident", "swap", "group-offload"):
            gen.configure(settings, memory=plan)
            gen.generate(spec)  # warm-up (and, for balanced, MagCache calibration per expert)
            counts, handles = tail_block_calls(gen.pipeline)
            result = measure_cpu(gen.pipeline, lambda spec=spec: gen.generate(spec), spec.steps, repeat)
            for h in handles:
                h.remove()
            rec = gen.runtime.record()
            contexts = 2 if spec.guidance_high > 1 else 1
            computed = len(counts) / (repeat * spec.steps * contexts)
            note = (
                f"experts {rec['expert_steps']['transformer']}+{rec['expert_steps']['transformer_2']} steps"
            )
            if settings.cache.kind != "none":
                note += f", {settings.cache.kind}: {computed:.0%} of block passes computed"
            if settings.fast_lora is not None:
                note += f", distilled LoRA {'fused' if rec['lora_fused'] else 'unfused'}, no CFG"
            rows.append(row_cpu(preset, plan, result, plain, note))
    header = [
        f"### Tiny model, {width}x{height}x{frames} ({(frames - 1) // 4 + 1}x{height // 16}x{width // 16} = "
        f"{((frames - 1) // 4 + 1) * (height // 16) * (width // 16):,} tokens) ({date.today().isoformat()}, {machine()})",
        "",
        f"`python bench/generation.py --repeat {repeat}`; best of {repeat} runs after a warm-up run.",
        "",
        "| preset | memory plan | s/step | vs plain diffusers | clip s (encode + steps + decode) | peak RSS MB | "
        "RSS growth during run MB | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    return header + rows


def measure_cpu(pipe, call, steps: int, repeat: int) -> dict:
    per_step, clip, peak, growth = [], [], 0, 0
    for _ in range(repeat):
        clock = StepClock(pipe)
        t0 = time.perf_counter()
        with PeakRSS() as rss:
            call()
        clip.append(time.perf_counter() - t0)
        clock.remove()
        per_step.append(clock.span() / steps)
        peak, growth = max(peak, rss.peak), max(growth, rss.peak - rss.start)
    # best of the runs: on a shared machine the other processes only ever add time
    return {"s_step": min(per_step), "clip": min(clip), "peak": peak, "growth": growth}


def row_cpu(preset: str, plan: str, r: dict, plain: dict, note: str) -> str:
    return (
        f"| {preset} | {plan} | {r['s_step']:.3f} | {r['s_step'] / plain['s_step']:.2f}x | {r['clip']:.2f} | "
        f"{r['peak'] / 1e6:.0f} | {r['growth'] / 1e6:.0f} | {note} |"
    )


# -- GPU part: full-size architectures, random weights ---------------------------------------

_COMMON = dict(
    patch_size=(1, 2, 2), attention_head_dim=128, text_dim=4096, freq_dim=256, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
)  # fmt: skip
MODELS = {
    "a14b": {
        "name": "Wan2.2-T2V-A14B",
        "transformer": dict(_COMMON, num_attention_heads=40, in_channels=16, out_channels=16, ffn_dim=13824, num_layers=40),
        "experts": 2,
        "vae": dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, temperal_downsample=[False, True, True]),
        "pipeline": dict(boundary_ratio=0.875),
        "quality": (40, 4.0, 3.0, 12.0),
        "sizes": {"720p": (1280, 720, 81), "480p": (832, 480, 81)},
    },
    "ti2v-5b": {
        "name": "Wan2.2-TI2V-5B",
        "transformer": dict(_COMMON, num_attention_heads=24, in_channels=48, out_channels=48, ffn_dim=14336, num_layers=30),
        "experts": 1,
        "vae": dict(
            base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
            temperal_downsample=[False, True, True], is_residual=True, in_channels=12, out_channels=12,
            patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4, latents_mean=[0.0] * 48,
            latents_std=[1.0] * 48,
        ),
        "pipeline": dict(expand_timesteps=True),
        "quality": (50, 5.0, 5.0, 5.0),
        "sizes": {"720p": (1280, 704, 81), "480p": (832, 480, 81)},
    },
}  # fmt: skip


@contextmanager
def _default_dtype(dtype):
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def build_pipeline(kind: str, device: str, *, toy: bool = False):
    """A ``WanPipeline`` of the full-size architecture with random weights, built on ``device``
    (bf16 transformers with diffusers' fp32 modules, fp32 VAE; no tokenizer or text encoder).
    ``toy`` shrinks it to 2 layers x 2 heads x 16 (for ``--gpu-dry-run``)."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

    m = MODELS[kind]
    cfg = dict(m["transformer"])
    if toy:
        cfg.update(num_layers=2, num_attention_heads=2, attention_head_dim=16, ffn_dim=64)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    experts = []
    for i in range(m["experts"]):
        torch.manual_seed(i)
        with torch.device(device), _default_dtype(dtype):
            expert = WanTransformer3DModel(**cfg).eval()
        for name, module in expert.named_modules():  # as from_pretrained keeps them
            if any(k in name.split(".") for k in expert._keep_in_fp32_modules):
                module.float()
        experts.append(expert)
    vae_cfg = dict(m["vae"])
    if toy:
        vae_cfg.update(
            base_dim=8, decoder_base_dim=8 if "decoder_base_dim" in vae_cfg else None, num_res_blocks=1
        )
    with torch.device(device):
        vae = AutoencoderKLWan(**vae_cfg).eval()
    shift = m["quality"][3]
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift
    )
    pipe = WanPipeline(
        tokenizer=None, text_encoder=None, vae=vae, scheduler=scheduler, transformer=experts[0],
        transformer_2=experts[1] if len(experts) > 1 else None, **m["pipeline"],
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


class BenchGenerator:
    """The part of ``WanGenerator`` that ``PipelineRuntime`` uses, around a pipeline built here
    (no text encoder: the bench passes ``prompt_embeds``)."""

    def __init__(self, pipe, device: str, model_id: str) -> None:
        self.pipeline, self.device, self.model_id = pipe, device, model_id
        self.loras, self.quantization = (), "none"

    def cache_identity(self) -> dict:
        return {"model_id": self.model_id, "bench": "random weights"}


def gpu_part(
    kinds, sizes, plans, presets, measured_steps: int, *, toy: bool = False, parallel: str | None = None
):
    import torch

    from brandstudio.generation.base import GenerationSpec
    from brandstudio.generation.presets import PresetSettings
    from brandstudio.generation.runtime import PipelineRuntime

    cuda = torch.cuda.is_available() and not toy
    device = "cuda" if cuda else "cpu"
    if parallel:
        from brandstudio.generation.parallel import parallel_device

        device = parallel_device(parallel, device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    gpu_name = torch.cuda.get_device_name() if cuda else "CPU (dry run, toy sizes)"
    lines = [
        f"### Full-size architectures, random weights ({date.today().isoformat()}, {gpu_name}, "
        f"torch {torch.__version__}{', ' + parallel if parallel else ''})",
        "",
        "| model | size | preset | memory plan | s/step | vs plain | vs floor (13 s/CFG step at 720p) | "
        "clip s | peak GPU GB | notes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in kinds:
        m = MODELS[kind]
        pipe = build_pipeline(kind, device, toy=toy)
        steps_q, g_high, g_low, shift = m["quality"]
        for size in sizes:
            width, height, frames = m["sizes"][size]
            if toy:
                width, height, frames = (64, 32, 5) if kind == "a14b" else (64, 64, 5)
            run = GpuRun(pipe, device, cuda, sync, measured_steps)
            q_spec = GenerationSpec("", "", 0, width, height, frames, steps_q, g_high, g_low, shift)
            # 1. plain diffusers: resident, PyTorch SDPA, no hooks
            pipe.to(device)
            plain = run.timed(q_spec)
            floor = 13.0 if (kind, size) == ("a14b", "720p") else None  # the anchor exists for A14B 720p only
            lines.append(
                gpu_row(m["name"], size, "plain diffusers", "resident", plain, plain, floor, "reference")
            )
            # 2. brandstudio's presets under each plan
            gen = BenchGenerator(pipe, device, kind)
            runtime = PipelineRuntime(gen, memory="resident", parallel=parallel)
            for preset in presets:
                if preset == "fast":
                    settings = PresetSettings("fast", 4, 1.0, 1.0, shift, attention="best", compile="auto")
                elif preset == "balanced":  # compile + attention; cache skips are weight-dependent
                    settings = PresetSettings(
                        "balanced", steps_q, g_high, g_low, shift, attention="best", compile="auto"
                    )
                else:
                    settings = PresetSettings("quality", steps_q, g_high, g_low, shift)
                spec = dataclasses.replace(
                    q_spec, steps=settings.steps, guidance_high=settings.guidance_high,
                    guidance_low=settings.guidance_low,
                )  # fmt: skip
                for plan in plans if preset == "quality" else ["resident"]:
                    try:
                        runtime.configure(settings, memory=plan)
                        runtime.prepare(spec)
                        result = run.timed(spec, decode=preset == "fast")
                    except torch.OutOfMemoryError:
                        lines.append(f"| {m['name']} | {size} | {preset} | {plan} | OOM | | | | | |")
                        runtime.configure(memory="resident")
                        continue
                    rec = runtime.record()
                    note = f"attention {rec['attention']}, compiled {rec['compiled']}"
                    if preset == "fast":
                        note += ", whole clip incl. VAE decode (target < 60 s)"
                    lines.append(gpu_row(m["name"], size, preset, plan, result, plain, floor, note))
            runtime.configure(memory="resident")
        del pipe, run
        if cuda:
            torch.cuda.empty_cache()
    return lines


class GpuRun:
    """Calls one random-weight pipeline with fixed random ``prompt_embeds`` and times it."""

    def __init__(self, pipe, device: str, cuda: bool, sync, measured_steps: int) -> None:
        import torch

        self.pipe, self.cuda, self.sync, self.measured_steps = pipe, cuda, sync, measured_steps
        dtype = pipe.transformer.dtype
        self.embeds = torch.randn(1, 512, 4096, generator=torch.Generator().manual_seed(0)).to(device, dtype)
        self.negative = torch.randn(1, 512, 4096, generator=torch.Generator().manual_seed(1)).to(
            device, dtype
        )

    def call(self, spec, *, steps_run: int | None = None, decode: bool = False) -> int:
        """One pipeline call; stops after ``steps_run`` steps (latents only) unless ``decode``."""
        import torch

        pipe, done = self.pipe, []

        def stop(p, i, t, kwargs):
            done.append(i)
            if steps_run is not None and len(done) >= steps_run:
                p._interrupt = True  # WanPipeline skips the remaining steps
            return kwargs

        cfg = spec.guidance_high > 1.0
        extra = {"guidance_scale_2": spec.guidance_low} if pipe.config.get("boundary_ratio") else {}
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, flow_shift=spec.flow_shift)
        pipe(
            prompt_embeds=self.embeds, negative_prompt_embeds=self.negative if cfg else None,
            height=spec.height, width=spec.width, num_frames=spec.num_frames,
            num_inference_steps=spec.steps, guidance_scale=spec.guidance_high,
            generator=torch.Generator().manual_seed(0), output_type="np" if decode else "latent",
            callback_on_step_end=stop, **extra,
        )  # fmt: skip
        pipe._interrupt = False
        return len(done)

    def timed(self, spec, *, decode: bool = False) -> dict:
        """s/step over ``measured_steps`` steady steps (or the whole clip with ``decode``), peak memory."""
        import torch

        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        self.call(spec, steps_run=1)  # warm-up: compile, kernel autotune, swap-in
        clock = StepClock(self.pipe, self.sync)
        self.sync()
        t0 = time.perf_counter()
        ran = self.call(spec, steps_run=None if decode else self.measured_steps, decode=decode)
        self.sync()
        clip = time.perf_counter() - t0
        clock.remove()
        peak = torch.cuda.max_memory_allocated() if self.cuda else 0
        return {"s_step": clock.span() / max(ran, 1), "clip": clip if decode else None, "peak": peak}


def gpu_row(model, size, preset, plan, r, plain, floor, note) -> str:
    vs_floor = "-"
    if floor is not None:
        vs_floor = (
            f"{r['s_step'] / (floor if preset != 'fast' else floor / 2):.2f}x"  # fast: no CFG, one pass
        )
    clip = "" if r["clip"] is None else f"{r['clip']:.1f}"
    return (
        f"| {model} | {size} | {preset} | {plan} | {r['s_step']:.2f} | {r['s_step'] / plain['s_step']:.2f}x | "
        f"{vs_floor} | {clip} | {r['peak'] / 1e9:.1f} | {note} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per CPU configuration")
    ap.add_argument("--gpu", action="store_true", help="GPU part only")
    ap.add_argument(
        "--gpu-dry-run", action="store_true", help="run the GPU part's code at toy sizes on the CPU"
    )
    ap.add_argument("--model", choices=[*MODELS, "all"], default="all")
    ap.add_argument("--size", choices=["720p", "480p", "all"], default="all")
    ap.add_argument(
        "--plans", default="resident,swap,group-offload", help="memory plans for `quality` on the GPU"
    )
    ap.add_argument("--presets", default="quality,balanced,fast")
    ap.add_argument("--steps", type=int, default=3, help="steady steps measured per GPU configuration")
    ap.add_argument("--parallel", default=None, help="ulysses:N or ring:N (under torchrun)")
    args = ap.parse_args()

    import torch

    kinds = list(MODELS) if args.model == "all" else [args.model]
    sizes = ["720p", "480p"] if args.size == "all" else [args.size]
    plans, presets = args.plans.split(","), args.presets.split(",")
    out: list[str] = []
    if args.gpu_dry_run:
        out += gpu_part(kinds, sizes, plans, presets, 1, toy=True)
    else:
        if not args.gpu:
            out += cpu_part(args.repeat)
        if torch.cuda.is_available():
            out += [""] + gpu_part(kinds, sizes, plans, presets, args.steps, parallel=args.parallel)
        elif args.gpu:
            raise SystemExit("--gpu: no CUDA device here")
        else:
            out += ["", "GPU part: not run (no CUDA device on this machine)."]
    rank = int(os.environ.get("RANK", 0))
    if rank == 0:
        print("\n".join(out))


if __name__ == "__main__":
    main()
