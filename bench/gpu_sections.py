"""The measurements of ``bench/gpu.sh``, one function per section (see ``bench/gpu.py``):
``grade``, ``sr``, ``rife`` (RIFE 4.6 in-between frames against the CPU ``flow`` interpolator),
``vae``, the denoising steps of ``a14b`` / ``ti2v-5b`` per speed preset and
memory plan, and ``lora-train`` (a brand LoRA's training steps on a full-size A14B expert). Each
registers itself in ``gpu.SECTIONS``; ``gpu.py`` runs each in a process of its own.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]  # this checkout's brandstudio, bench/

from gpu import (  # noqa: E402
    A14B_IN_MEMORY,
    A14B_OFFLOAD,
    COMPILE_S,
    CONFIGS,
    GPU_FLOPS,
    HOST_BYTES_S,
    MODELS,
    SECTIONS,
    TIMED_STEPS,
    TOY_SIZE,
    WARMUP_STEPS,
    Bench,
    Section,
    WanModel,
    preset_settings,
)
from grade import LUT_PATH  # noqa: E402
from grade import clip as test_frames  # noqa: E402
from grade import ffmpeg as ffmpeg_lut3d  # noqa: E402

from brandstudio.generation.base import GenerationSpec  # noqa: E402
from brandstudio.generation.memory import A14B_GEOMETRY, GB, estimate_memory  # noqa: E402

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


def measure_rife(bench: Bench) -> None:
    import torch  # heavy
    from safetensors.torch import save_file

    from brandstudio.post.interpolate import make_interpolator
    from brandstudio.post.rife import RIFE, IFNet  # imports torch at module level

    (w, h), pairs = ((64, 48), 1) if bench.toy else ((1920, 1080), 4)
    alphas = [0.5] if bench.toy else [0.25, 0.5, 0.75]  # 16 -> ~60 fps: three frames between two
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rife46.safetensors"
        save_file(IFNet().state_dict(), str(path))
        model = RIFE(path, device=bench.device)
    frames = test_frames(pairs + 1, h, w)
    model.between(frames[0], frames[1], alphas)  # warm-up: cuDNN picks its kernels
    bench.reset_peak()
    made = pairs * len(alphas)
    s_rife = bench.time(lambda: [model.between(frames[i], frames[i + 1], alphas) for i in range(pairs)])[0]
    peak = bench.peak_gb()
    flow = make_interpolator("flow")
    s_flow = bench.time(lambda: [flow.between(frames[i], frames[i + 1], alphas) for i in range(pairs)])[0]
    bench.table(f"RIFE 4.6 (random weights: speed does not depend on them), {w}x{h}, {len(alphas)} frames "
                "between each pair", "interpolator | frames made/s | vs flow | peak GB")  # fmt: skip
    bench.row(f"rife, {model!r}", f"{made / s_rife:.1f}", f"{s_flow / s_rife:.2f}x", peak)
    bench.row("flow (OpenCV DIS both ways, on the CPU)", f"{made / s_flow:.1f}", "1.00x", "")


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


# -- lora-train: a brand LoRA's training steps on a full-size A14B expert ----------------------------

LORA_TRAIN_SIZE = (832, 480, 33)  # musubi-tuner's usual Wan2.2 LoRA buckets are 480p, 33-81 frames


def measure_lora_train(bench: Bench) -> None:
    """``brandstudio lora train``'s GPU settings on one full-size T2V-A14B expert (the other expert is
    the same network, trained after it while this one waits in CPU memory): the base in bf16 with
    gradient checkpointing, a rank-32 peft LoRA on the attention and FFN Linears in float32 with
    AdamW, the flow-matching loss on the high-noise range. Steps/s and peak memory; then the cost of
    moving the expert off the GPU (what ``--offload-idle`` pays at the expert switch)."""
    import torch  # heavy
    from diffusers import WanTransformer3DModel
    from peft import LoraConfig

    from brandstudio.generation.flow_matching import flow_matching_loss, sample_sigmas
    from brandstudio.style import DEFAULT_TARGET_MODULES

    model = MODELS["a14b"]
    w, h, f = TOY_SIZE if bench.toy else LORA_TRAIN_SIZE
    rank = 4 if bench.toy else 32
    # 1. the expert, built on the GPU in bf16 (fp32 on the CPU dry run)
    start = time.perf_counter()
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32 if bench.toy else torch.bfloat16)
    try:
        with torch.device(bench.device):
            expert = WanTransformer3DModel(**model.transformer_config(bench.toy)).requires_grad_(False)
    finally:
        torch.set_default_dtype(default)
    built_s = time.perf_counter() - start
    # 2. the LoRA (float32), gradient checkpointing, AdamW over the LoRA only
    expert.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=list(DEFAULT_TARGET_MODULES)))
    params = [p for n, p in expert.named_parameters() if "lora_" in n]
    for p in params:
        p.data = p.data.float()
        p.requires_grad_(True)
    expert.enable_gradient_checkpointing()
    expert.train()
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 16, (f - 1) // 4 + 1, h // 8, w // 8, generator=gen).to(bench.device)
    text = torch.randn(1, 512, expert.config.text_dim, generator=gen).to(bench.device)

    def step() -> float:
        sigmas = sample_sigmas(1, low=0.875, high=1.0, shift=12.0, generator=gen)
        loss = flow_matching_loss(expert, latents, text, sigmas, torch.randn(latents.shape, generator=gen).to(latents))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss)

    bench.table(f"LoRA training on one {model.name} expert, {w}x{h}x{f} ({model.tokens(w, h, f):,} tokens), "
                f"rank {rank}", "base | LoRA params | s/step | steps/s | peak GB | expert off the GPU s")  # fmt: skip
    step()  # warm-up: allocator, cuDNN/flash kernels
    bench.reset_peak()
    steps = 1 if bench.toy else 2
    s = bench.time(lambda: [step() for _ in range(steps)])[0] / steps
    peak = bench.peak_gb()
    off_s = bench.time(lambda: expert.to("cpu"))[0]
    lora_params = sum(p.numel() for p in params)
    bench.row(str(next(expert.parameters()).dtype).removeprefix("torch."), str(lora_params),
              seconds(s), f"{1 / s:.3f}", peak, seconds(off_s))  # fmt: skip
    bench.note(f"Built on {bench.device} in {built_s:.1f} s. One expert is measured: the other is the same "
               "network on the low-noise range, trained after it with this one in CPU memory.")  # fmt: skip


for name, title, budget_s, measure in (
    ("grade", "LUT grade, torch on the GPU vs ffmpeg lut3d", 20.0, measure_grade),
    ("sr", "Real-ESRGAN x4plus, bf16", 25.0, measure_sr),
    ("rife", "RIFE 4.6 in-between frames, bf16, vs flow on the CPU", 20.0, measure_rife),
    ("vae", "Wan2.1 VAE decode", 40.0, measure_vae),
    ("ti2v-5b", "Wan2.2-TI2V-5B", 90.0, partial(measure_transformer, "ti2v-5b", CONFIGS)),
    ("a14b", "Wan2.2-T2V-A14B", 155.0, partial(measure_transformer, "a14b", A14B_IN_MEMORY)),
    ("a14b-offload", "Wan2.2-T2V-A14B under group-offload", 60.0, partial(measure_transformer, "a14b", A14B_OFFLOAD)),
    ("lora-train", "LoRA training on a T2V-A14B expert", 60.0, measure_lora_train),
):  # fmt: skip
    SECTIONS.register(name, Section(title, budget_s, measure))


