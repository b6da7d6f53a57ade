"""``brandstudio lora train``: a brand LoRA trained into both Wan experts from the brand's own stills and clips.

Wan2.2 A14B denoises with two experts split at ``boundary_ratio``: ``transformer`` takes the high
noise levels (layout, motion), ``transformer_2`` the low ones (texture, colour). The LoRA trainers
the field uses (musubi-tuner, ai-toolkit, DiffSynth-Studio) train each expert on its own noise
range, and so does this one: a peft LoRA (rank, alpha, target modules) per expert, trained with
the flow-matching loss (:mod:`brandstudio.generation.flow_matching`) on noise levels drawn from
that expert's range. TI2V-5B and Wan2.1 have one transformer, trained on every noise level.

The run, as numbered steps in :func:`train_lora`:

1. the data: stills and clips with captions (:mod:`.lora_data`), checked before anything loads;
2. the base model, the profile's ``[model] id`` (the offline ``tiny`` model, a hub id or a local
   diffusers directory);
3. the run's folder: a previous run with the same settings and data is resumed from its newest
   checkpoint; one with other settings is refused (``restart=True`` discards it);
4. latents and text embeddings computed once and cached in the run's folder; the text encoder
   and VAE then leave the GPU;
5. each expert trained in turn (on a GPU: in bfloat16 with gradient checkpointing, the idle
   expert in CPU memory), a checkpoint every ``checkpoint_every`` steps (written to a temporary
   folder and renamed, so a kill at any moment loses at most the steps since the last one), and
   on Ctrl-C (the step in flight finishes, a checkpoint is written, then it stops);
6. the LoRA written atomically in the key format ``[[style.loras]]`` loads (``transformer.*`` for
   the high-noise expert, ``transformer_2.*`` for the low-noise one; alpha/rank folded into
   ``lora_B``), with metadata (base model, rank, steps, data hash, trigger), and a loss plot;
7. on request, added to the profile's ``[[style.loras]]`` (its fingerprint changes with it).

Every step is deterministic given the seed (each step draws its items, noise levels and noise
from a generator seeded by the seed, the expert and the step), so a resumed run ends with the
same weights as one that was never interrupted.

Example:
    >>> from brandstudio.style import train_lora, LoraTrainingConfig      # doctest: +SKIP
    >>> result = train_lora("brand_profiles/aurora-coffee",
    ...                     config=LoraTrainingConfig(steps=300, rank=8, learning_rate=1e-3))  # doctest: +SKIP
    >>> result.path, result.losses[-1]                                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .._version import VERSION
from ..errors import GenerationError, TrainingError, TrainingStopped
from ..files import brandstudio_home, check_writable, write_bytes_atomic, write_json_atomic
from ..generation.base import TEXT_MAX_TOKENS
from ..generation.devices import dtype_kwargs
from ..generation.flow_matching import encode_latents, expert_sigma_ranges, flow_matching_loss, sample_sigmas
from ..generation.logs import quiet_progress
from ..generation.lora import BASE_MODEL_METADATA_KEY
from ..generation.tiny import tiny_model_path, tiny_model_version
from ..generation.wan import model_family_of
from ..profile import BrandProfile, load_profile
from ..progress import ProgressCallback, stage_reporter
from ..weights import safetensors_bytes
from .lora_data import TrainingItem, data_fingerprint, find_items, load_pixels
from .lora_profile import add_lora_to_profile, check_inside_profile

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "DEFAULT_TARGET_MODULES",
    "LoraTrainingConfig",
    "LoraTrainingResult",
    "train_lora",
]

DEFAULT_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2")
"""The Linear layers a brand LoRA adapts in every block: self- and cross-attention, the FFN."""

_ADAPTER = "brand"  # the adapter's name inside peft while it trains
_KEEP_CHECKPOINTS = 2  # the newest two: a kill while writing one leaves the one before
_EXPERT_LABELS = {"transformer": "high-noise expert", "transformer_2": "low-noise expert"}


@dataclass(frozen=True)
class LoraTrainingConfig:
    """How a brand LoRA is trained. The defaults follow the Wan2.2 LoRA trainers (rank 16–32,
    learning rate 1e-4); the offline ``tiny`` model learns in a few hundred steps at 1e-3.

    Attributes:
        rank: the LoRA rank.
        alpha: the LoRA alpha (``None``: the rank, a scale of 1).
        target_modules: module name suffixes to adapt (:data:`DEFAULT_TARGET_MODULES`).
        steps: optimizer steps per expert.
        learning_rate: AdamW learning rate.
        batch_size: items per step (drawn from items of one shape).
        checkpoint_every: steps between checkpoints.
        seed: the seed of every draw (items, noise levels, noise).
        width, height: the training size (``None``: the profile's ``[model]`` width and height).
        frames: the most frames taken from a clip (``4k + 1``).
        caption_dropout: the share of draws whose caption is the trigger word alone (kohya's and
            musubi-tuner's caption dropout, keeping the trigger): the look is tied to the trigger
            rather than to the captions' words, so it reaches prompts unlike the captions.
        crop: centre-crop items of other aspect ratios instead of refusing them.
        precision: ``"auto"`` (bfloat16 on CUDA, float32 on CPU), ``"bfloat16"`` or ``"float32"``:
            the frozen base weights; the LoRA weights and the optimizer are always float32.
        gradient_checkpointing: recompute activations in the backward pass (``None``: on CUDA).
        offload_idle_expert: keep the expert not being trained in CPU memory (``None``: on CUDA).
    """

    rank: int = 16
    alpha: float | None = None
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES
    steps: int = 500
    learning_rate: float = 1e-4
    batch_size: int = 1
    checkpoint_every: int = 100
    seed: int = 0
    width: int | None = None
    height: int | None = None
    frames: int = 17
    caption_dropout: float = 0.0
    crop: bool = False
    precision: Literal["auto", "bfloat16", "float32"] = "auto"
    gradient_checkpointing: bool | None = None
    offload_idle_expert: bool | None = None

    def check(self) -> None:
        """Raise :class:`~brandstudio.errors.TrainingError` on a setting out of range."""
        rules = [
            ("rank", self.rank, isinstance(self.rank, int) and 1 <= self.rank <= 512, "an integer from 1 to 512 (16-32 is usual)"),
            ("alpha", self.alpha, self.alpha is None or (math.isfinite(self.alpha) and self.alpha > 0), "a positive number, or omit it (= rank)"),
            ("steps", self.steps, isinstance(self.steps, int) and self.steps >= 1, "a positive number of steps per expert"),
            ("learning_rate", self.learning_rate, math.isfinite(self.learning_rate) and 0 < self.learning_rate < 1, "a rate such as 1e-4"),
            ("batch_size", self.batch_size, isinstance(self.batch_size, int) and 1 <= self.batch_size <= 64, "an integer from 1 to 64"),
            ("checkpoint_every", self.checkpoint_every, isinstance(self.checkpoint_every, int) and self.checkpoint_every >= 1, "a positive number of steps"),
            ("frames", self.frames, isinstance(self.frames, int) and self.frames >= 1 and (self.frames - 1) % 4 == 0, "4k + 1 frames (1, 5, 17, 81)"),
            ("caption_dropout", self.caption_dropout, isinstance(self.caption_dropout, (int, float)) and 0 <= self.caption_dropout <= 1, "a share from 0 to 1 (0.1-0.5 is usual)"),
            ("precision", self.precision, self.precision in ("auto", "bfloat16", "float32"), "auto, bfloat16 or float32"),
            ("target_modules", self.target_modules, bool(self.target_modules), "module names such as to_q,to_k,to_v,to_out.0"),
        ]  # fmt: skip
        for name, value, ok, want in rules:
            if not ok:
                raise TrainingError(
                    f"`{name}` must be {want}, got {value!r}", field=name, value=value, fix=f"use {want}"
                )
        for name, value in (("width", self.width), ("height", self.height)):
            if value is not None and (not isinstance(value, int) or value < 16 or value % 16):
                raise TrainingError(f"`{name}` must be a multiple of 16 (at least 16), got {value!r}", field=name,
                                    value=value, fix="use the model's generation size, e.g. 832x480")  # fmt: skip


@dataclass(frozen=True)
class LoraTrainingResult:
    """What a training run made.

    Attributes:
        path: the LoRA file.
        loss_plot: the PNG of the loss per step and expert.
        losses: ``{expert: [loss per step]}``.
        steps: optimizer steps per expert.
        resumed_from: the step (over all experts) the run resumed at, 0 for a fresh run.
        seconds: wall time of this call.
        metadata: what the file's safetensors metadata says.
        added_to_profile: whether the profile's ``[[style.loras]]`` now loads it.
        work_dir: the run's folder (cache and checkpoints).
    """

    path: Path
    loss_plot: Path
    losses: Mapping[str, list[float]] = field(repr=False)
    steps: int
    resumed_from: int
    seconds: float
    metadata: Mapping[str, str] = field(repr=False)
    added_to_profile: bool
    work_dir: Path


def train_lora(
    profile: str | Path | BrandProfile,
    *,
    data: str | Path | None = None,
    output: str | Path | None = None,
    name: str | None = None,
    trigger: str | None = None,
    config: LoraTrainingConfig | None = None,
    work_dir: str | Path | None = None,
    restart: bool = False,
    device: str = "auto",
    add_to_profile: bool = False,
    on_progress: ProgressCallback | None = None,
) -> LoraTrainingResult:
    """Train a brand LoRA for the profile's model on both experts, resumably.

    Args:
        profile: the brand profile (directory or loaded).
        data: the folder of stills and clips (default: the profile's ``[style] references``).
        output: the ``.safetensors`` to write (default: ``<profile>/loras/<name>.safetensors``).
        name: the LoRA's name in the profile (default: ``<brand id>-style``).
        trigger: the word that starts every caption (default: the trigger of the profile's LoRA
            of that name, else ``"<brand id> style"``).
        config: :class:`LoraTrainingConfig`.
        work_dir: the run's folder (default: under ``$BRANDSTUDIO_HOME/training``, one per output).
        restart: discard a previous run with other settings instead of refusing.
        device: ``"auto"`` (CUDA when present), ``"cuda"``, ``"cpu"``.
        add_to_profile: add (or point) the profile's ``[[style.loras]]`` entry at the file.
        on_progress: called with ``Progress("train", step, total, detail)`` after every step.

    Raises:
        TrainingError: bad data or settings, a run folder of other settings.
        GenerationError: the base model could not be loaded.
    """
    started = time.perf_counter()
    config = config or LoraTrainingConfig()
    config.check()
    prof = profile if isinstance(profile, BrandProfile) else load_profile(profile)
    spec = prof.spec
    name = name or f"{spec.brand.id}-style"
    trigger = trigger if trigger is not None else _default_trigger(prof, name)
    output = Path(output) if output is not None else prof.root / "loras" / f"{name}.safetensors"
    if output.suffix.lower() != ".safetensors":
        raise TrainingError(f"the LoRA must be written as .safetensors, got {output.name}", field="output",
                            value=str(output), fix="name the output <name>.safetensors")  # fmt: skip
    check_writable(output, error=TrainingError, what="the LoRA", field="output")
    if add_to_profile:
        check_inside_profile(prof.root, output, name)
    width = config.width or spec.model.width
    height = config.height or spec.model.height
    progress = stage_reporter(on_progress, "train")

    # 1. the data, checked before anything loads
    folder = _data_folder(prof, data)
    items = find_items(folder, trigger=trigger, default_caption=spec.prompt.style, crop=config.crop)
    data_hash = data_fingerprint(items)

    # 2. the base model
    device = _device(device)
    dtype_name = (
        config.precision if config.precision != "auto" else ("bfloat16" if device == "cuda" else "float32")
    )
    on_gpu = device == "cuda"
    pipe, family, source = _load_base(spec.model.id, spec.model.revision, dtype_name)
    experts = _experts(pipe, spec.model.boundary_ratio)

    # 3. the run's folder: resume, refuse or start
    identity = {
        "brandstudio": 1, "model": spec.model.id, "revision": spec.model.revision, "family": family,
        "tiny_version": tiny_model_version(spec.model.id),  # new demo weights: new latents
        "data": data_hash, "trigger": trigger, "width": width, "height": height,
        "config": {k: v for k, v in asdict(config).items() if k not in ("checkpoint_every",)},
    }  # fmt: skip
    run = _RunFolder(Path(work_dir) if work_dir else _default_work_dir(output), identity, restart=restart)
    resume = run.newest_checkpoint()

    # 4. latents and text embeddings, once
    cache = run.cache(items, lambda: _encode(pipe, items, trigger, width, height, config.frames, device))
    _free_encoders(pipe, on_gpu)

    # 5. each expert in turn
    total = config.steps * len(experts)
    resumed_from = resume.global_step(experts, config.steps) if resume else 0
    losses: dict[str, list[float]] = dict(resume.losses) if resume else {}
    trained: dict[str, dict[str, torch.Tensor]] = dict(resume.finished) if resume else {}
    shift = float(pipe.scheduler.config.get("flow_shift", spec.model.flow_shift) or spec.model.flow_shift)
    with _stop_on_interrupt() as stop:
        for index, (label, (low, high)) in enumerate(experts.items()):
            if label in trained:
                continue
            module = getattr(pipe, label)
            trainer = _ExpertTrainer(label, index, module, config, device, (low, high), shift)
            start = 0
            if resume and resume.expert == label:
                trainer.load(resume)
                start = resume.step
            _place_experts(pipe, experts, label, device, offload=_default(config.offload_idle_expert, on_gpu))
            history = losses.setdefault(label, [])
            del history[start:]
            for step in range(start, config.steps):
                history.append(trainer.step(cache, step))
                done = index * config.steps + step + 1
                progress(
                    done,
                    total,
                    f"{_EXPERT_LABELS.get(label, label)} step {step + 1}/{config.steps} loss {history[-1]:.4f}",
                )
                last = step + 1 == config.steps
                if stop.requested or last or (step + 1) % config.checkpoint_every == 0:
                    run.save(label, step + 1, trainer, trained, losses)
                if stop.requested and not last:
                    raise TrainingStopped(
                        f"training stopped at step {step + 1} of {config.steps} of the {_EXPERT_LABELS.get(label, label)}: "
                        f"a checkpoint is saved in {run.root}",
                        fix="run the same command again to resume where it stopped",
                    )
            trained[label] = trainer.weights()
            trainer.remove()

    # 6. the LoRA file and the loss plot
    metadata = _metadata(family, trigger, config, data_hash, experts, len(items), name)
    write_bytes_atomic(
        output,
        safetensors_bytes(_lora_tensors(trained, (config.alpha or config.rank) / config.rank), metadata),
    )
    plot = _plot_losses(output.with_suffix(".loss.png"), losses, name)

    # 7. the profile's [[style.loras]], on request
    added = False
    if add_to_profile:
        add_lora_to_profile(prof.root, output, name=name, trigger=trigger, base_model=family)
        added = True
    return LoraTrainingResult(path=output, loss_plot=plot, losses=losses, steps=config.steps, resumed_from=resumed_from,
                              seconds=time.perf_counter() - started, metadata=metadata, added_to_profile=added,
                              work_dir=run.root)  # fmt: skip


# ---------------------------------------------------------------------------- 1. the data


def _default_trigger(prof: BrandProfile, name: str) -> str:
    for lora in prof.spec.style.loras:
        if lora.name == name and lora.trigger_words:
            return lora.trigger_words[0]
    return f"{prof.spec.brand.id} style"


def _data_folder(prof: BrandProfile, data: str | Path | None) -> Path:
    if data is not None:
        return Path(data)
    if prof.spec.style.references is None:
        raise TrainingError(
            f"profile `{prof.spec.brand.id}` names no training data: [style] references is not set",
            field="style.references",
            fix='pass --data FOLDER, or set [style] references = "references" in brand.toml and put the stills there',
        )
    return prof.root / prof.spec.style.references


# ---------------------------------------------------------------------------- 2. the model


def _device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise TrainingError(f"`device` must be auto, cpu or cuda, got {device!r}", field="device", value=device,
                            fix="use --device auto")  # fmt: skip
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError("`device` is cuda but this machine has no CUDA GPU", field="device", value=device,
                            fix="use --device cpu (the tiny model trains on a CPU in minutes)")  # fmt: skip
    return device


def _load_base(model_id: str, revision: str | None, dtype_name: str):
    """The profile's model as a ``WanPipeline`` (VAE in float32), its family and its source."""
    import torch
    from diffusers import AutoencoderKLWan, WanPipeline

    tiny = tiny_model_path(model_id)
    source = str(tiny[0]) if tiny else model_id
    dtype = getattr(torch, dtype_name)
    try:
        vae = AutoencoderKLWan.from_pretrained(
            source, subfolder="vae", revision=revision, **dtype_kwargs(torch.float32)
        )
        with quiet_progress(Path(source).is_dir()):
            pipe = WanPipeline.from_pretrained(source, revision=revision, vae=vae, **dtype_kwargs(dtype))
    except Exception as exc:
        raise GenerationError(
            f"could not load the base model `{model_id}` to train on: {type(exc).__name__}: {exc}",
            field="model.id", value=model_id,
            fix="a Wan text-to-video checkpoint in diffusers format (hub id, cached, or a local folder); "
            "'tiny' trains offline",
        ) from exc  # fmt: skip
    family = model_family_of(pipe, source if Path(source).is_dir() else None)
    return pipe, family, source


def _experts(pipe, boundary_ratio: float | None) -> dict[str, tuple[float, float]]:
    if pipe.transformer_2 is None or pipe.transformer is None:
        return expert_sigma_ranges(None)
    ratio = boundary_ratio if boundary_ratio is not None else pipe.config.get("boundary_ratio")
    return expert_sigma_ranges(ratio)


def _default(value: bool | None, on_gpu: bool) -> bool:
    return on_gpu if value is None else value


# ---------------------------------------------------------------------------- 3. the run's folder


def _default_work_dir(output: Path) -> Path:
    key = hashlib.sha256(str(output.resolve()).encode("utf-8")).hexdigest()[:10]
    return brandstudio_home() / "training" / f"{output.stem}-{key}"


@dataclass(frozen=True)
class _Checkpoint:
    expert: str
    step: int  # steps of ``expert`` done
    adapter: dict  # peft state dict of ``expert`` (LoRA weights, unscaled)
    optimizer: dict
    finished: dict  # label -> peft state dict of experts already done
    losses: dict

    def global_step(self, experts: Mapping[str, Any], steps: int) -> int:
        return list(experts).index(self.expert) * steps + self.step


class _RunFolder:
    """A training run's folder: ``run.json`` (what is trained), ``cache.safetensors`` (latents and
    text embeddings), ``checkpoints/step-NNNNNN/`` (each written to a temporary folder and renamed)."""

    def __init__(self, root: Path, identity: Mapping, *, restart: bool) -> None:
        self.root = root
        self.identity = json.loads(json.dumps(identity))
        marker = root / "run.json"
        if marker.is_file():
            try:
                previous = json.loads(marker.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                previous = None
            if previous != self.identity:
                if not restart:
                    changed = sorted(k for k in set(self.identity) | set(previous or {})
                                     if (previous or {}).get(k) != self.identity.get(k))  # fmt: skip
                    raise TrainingError(
                        f"the run folder {root} holds a training run with other settings or data "
                        f"(differs in: {', '.join(changed) or 'run.json unreadable'})",
                        field="work_dir", value=str(root),
                        fix="run again with --restart to discard it, or pass another --work-dir",
                    )  # fmt: skip
                shutil.rmtree(root)
        elif root.exists() and any(root.iterdir()):
            if not restart:
                raise TrainingError(f"the run folder {root} is not empty and holds no training run", field="work_dir",
                                    value=str(root), fix="pass an empty or new --work-dir, or --restart to clear it")  # fmt: skip
            shutil.rmtree(root)
        root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(marker, self.identity)

    # the cache of latents and text embeddings
    def cache(self, items: Sequence[TrainingItem], encode) -> dict[str, Any]:
        from safetensors.torch import load_file

        path = self.root / "cache.safetensors"
        if path.is_file():
            try:
                tensors = load_file(str(path))
                return _unpack_cache(tensors, len(items))
            except Exception:  # noqa: BLE001 - a damaged cache is made again
                path.unlink(missing_ok=True)
        cache = encode()
        packed = {f"latents.{i}": t.contiguous() for i, t in enumerate(cache["latents"])}
        packed.update({f"embeds.{i}": t.contiguous() for i, t in enumerate(cache["embeds"])})
        packed["trigger_embed"] = cache["trigger_embed"].contiguous()
        write_bytes_atomic(path, safetensors_bytes(packed, {"items": str(len(items))}))
        return cache

    # checkpoints
    def _checkpoints(self) -> list[Path]:
        folder = self.root / "checkpoints"
        if not folder.is_dir():
            return []
        return sorted(
            p for p in folder.iterdir() if p.name.startswith("step-") and (p / "state.json").is_file()
        )

    def newest_checkpoint(self) -> _Checkpoint | None:
        import torch
        from safetensors.torch import load_file

        for path in reversed(self._checkpoints()):
            try:
                state = json.loads((path / "state.json").read_text(encoding="utf-8"))
                tensors = load_file(str(path / "adapter.safetensors"))
                optimizer = torch.load(path / "optimizer.pt", weights_only=True)
            except Exception:  # noqa: BLE001 - a damaged checkpoint: take the one before
                continue
            finished = {label: _strip(tensors, f"{label}.") for label in state["finished"]}
            return _Checkpoint(expert=state["expert"], step=int(state["step"]),
                               adapter=_strip(tensors, f"{state['expert']}."), optimizer=optimizer,
                               finished=finished, losses=state["losses"])  # fmt: skip
        return None

    def save(
        self, label: str, step: int, trainer: _ExpertTrainer, finished: Mapping, losses: Mapping
    ) -> None:
        import torch

        folder = self.root / "checkpoints"
        folder.mkdir(exist_ok=True)
        tensors = {f"{label}.{k}": v for k, v in trainer.weights().items()}
        for done, weights in finished.items():
            tensors.update({f"{done}.{k}": v for k, v in weights.items()})
        tmp = Path(tempfile.mkdtemp(prefix=".step-", dir=folder))
        try:
            (tmp / "adapter.safetensors").write_bytes(safetensors_bytes(tensors, {}))
            torch.save(trainer.optimizer.state_dict(), tmp / "optimizer.pt")
            state = {"expert": label, "step": step, "finished": sorted(finished), "losses": losses}
            (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")  # last: marks it complete
            final = folder / f"step-{label}-{step:06d}"
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for old in self._checkpoints()[:-_KEEP_CHECKPOINTS]:
            shutil.rmtree(old, ignore_errors=True)


def _strip(tensors: Mapping[str, Any], prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _unpack_cache(tensors: Mapping[str, Any], count: int) -> dict[str, Any]:
    latents = [tensors[f"latents.{i}"] for i in range(count)]
    embeds = [tensors[f"embeds.{i}"] for i in range(count)]
    return {"latents": latents, "embeds": embeds, "trigger_embed": tensors["trigger_embed"]}


# ---------------------------------------------------------------------------- 4. latents and embeddings


def _encode(
    pipe, items: Sequence[TrainingItem], trigger: str, width: int, height: int, frames: int, device: str
) -> dict[str, Any]:
    """Every item through the VAE (posterior mean, normalised) and every caption, and the trigger
    word alone (for caption dropout), through the text encoder, one at a time on ``device``; all
    stored on the CPU in float32."""
    import torch

    def embed(text: str):
        out, _ = pipe.encode_prompt(text, do_classifier_free_guidance=False,
                                    max_sequence_length=TEXT_MAX_TOKENS, device=torch.device(device))  # fmt: skip
        return out[0].float().cpu()

    latents, embeds = [], []
    pipe.vae.to(device)
    pipe.text_encoder.to(device)
    with torch.no_grad():
        for item in items:
            pixels = load_pixels(item, width=width, height=height, frames=frames)
            video = torch.tensor(pixels).permute(3, 0, 1, 2)[None].float().div(127.5).sub(1.0)
            latents.append(encode_latents(pipe.vae, video.to(device))[0].float().cpu())
            embeds.append(embed(item.caption))
        trigger_embed = embed(trigger)
    return {"latents": latents, "embeds": embeds, "trigger_embed": trigger_embed}


def _free_encoders(pipe, on_gpu: bool) -> None:
    """The text encoder and VAE are done once the cache exists: off the GPU."""
    if on_gpu:
        import torch

        pipe.text_encoder.to("cpu")
        pipe.vae.to("cpu")
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------- 5. training an expert


def _place_experts(pipe, experts: Mapping[str, Any], active: str, device: str, *, offload: bool) -> None:
    for label in experts:
        module = getattr(pipe, label)
        if label == active:
            module.to(device)
        elif offload:
            module.to("cpu")
    if offload and device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


class _ExpertTrainer:
    """A peft LoRA on one expert, its AdamW and its deterministic steps."""

    def __init__(self, label, index, module, config: LoraTrainingConfig, device: str,
                 sigma_range: tuple[float, float], shift: float) -> None:  # fmt: skip
        import torch
        from peft import LoraConfig

        self.label, self.index, self.module, self.config = label, index, module, config
        self.device, self.sigma_range, self.shift = device, sigma_range, shift
        module.requires_grad_(False)  # loaded in the training precision (step 2); only the LoRA learns
        lora = LoraConfig(r=config.rank, lora_alpha=config.alpha or config.rank, init_lora_weights=True,
                          target_modules=list(config.target_modules))  # fmt: skip
        try:
            with torch.random.fork_rng(devices=[]):  # lora_A's random init, from the run's seed
                torch.manual_seed(_step_seed(config.seed, index, 10**9))
                module.add_adapter(lora, adapter_name=_ADAPTER)
        except ValueError as exc:  # peft: no module matched the targets
            raise TrainingError(f"the LoRA's target modules {list(config.target_modules)} match nothing in the "
                                f"{label}: {exc}", field="target_modules", value=",".join(config.target_modules),
                                fix="use Linear names of the Wan transformer, e.g. to_q,to_k,to_v,to_out.0,ffn.net.0.proj,ffn.net.2") from None  # fmt: skip
        module.set_adapter(_ADAPTER)
        self.params = [p for n, p in module.named_parameters() if f".{_ADAPTER}." in n and "lora_" in n]
        for p in self.params:  # the LoRA trains in float32 even on a bfloat16 base
            p.data = p.data.float()
            p.requires_grad_(True)
        if _default(config.gradient_checkpointing, device.startswith("cuda")):
            module.enable_gradient_checkpointing()
        module.train()
        self.optimizer = torch.optim.AdamW(self.params, lr=config.learning_rate, weight_decay=0.0)

    def load(self, checkpoint: _Checkpoint) -> None:
        from peft.utils import set_peft_model_state_dict

        set_peft_model_state_dict(self.module, checkpoint.adapter, adapter_name=_ADAPTER)
        for p in self.params:
            p.data = p.data.float()
        self.optimizer.load_state_dict(checkpoint.optimizer)

    def step(self, cache: Mapping[str, list], step: int) -> float:
        import torch

        g = torch.Generator().manual_seed(_step_seed(self.config.seed, self.index, step))
        latents, embeds = cache["latents"], cache["embeds"]
        first = int(torch.randint(len(latents), (1,), generator=g))
        same = [i for i in range(len(latents)) if latents[i].shape == latents[first].shape]
        picks = [first] + [
            same[int(j)] for j in torch.randint(len(same), (self.config.batch_size - 1,), generator=g)
        ]
        x0 = torch.stack([latents[i] for i in picks]).to(self.device)
        dropped = torch.zeros(len(picks), dtype=torch.bool)
        if self.config.caption_dropout:  # drawn only when asked, so runs without it are as before
            dropped = torch.rand(len(picks), generator=g) < self.config.caption_dropout
        text = torch.stack(
            [cache["trigger_embed"] if drop else embeds[i] for i, drop in zip(picks, dropped.tolist(), strict=True)]
        ).to(self.device)
        low, high = self.sigma_range
        sigmas = sample_sigmas(len(picks), low=low, high=high, shift=self.shift, generator=g)
        noise = torch.randn(x0.shape, generator=g).to(self.device)
        loss = flow_matching_loss(self.module, x0, text, sigmas.to(self.device), noise)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the loss of the {_EXPERT_LABELS.get(self.label, self.label)} became {loss.item()} at step {step + 1}",
                field="learning_rate", value=self.config.learning_rate,
                fix="lower the learning rate (1e-4 is usual), or resume from the last checkpoint",
            )  # fmt: skip
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def weights(self) -> dict:
        """The adapter's peft state dict (``blocks.0.attn1.to_q.lora_A.weight`` ...), on the CPU."""
        from peft.utils import get_peft_model_state_dict

        state = get_peft_model_state_dict(self.module, adapter_name=_ADAPTER)
        return {k: v.detach().float().cpu().contiguous() for k, v in state.items()}

    def remove(self) -> None:
        """Take the adapter out: the expert is the base model again (its weights go in the file)."""
        self.module.delete_adapters(_ADAPTER)
        self.module.eval()
        self.module.requires_grad_(False)


def _step_seed(seed: int, expert: int, step: int) -> int:
    return (seed * 1_000_003 + expert * 100_003 + step) % (2**63)


@contextlib.contextmanager
def _stop_on_interrupt() -> Iterator[Any]:
    """Ctrl-C asks the loop to stop after the step in flight (so a checkpoint can be written);
    a second Ctrl-C stops at once. Only in the main thread, where Python delivers signals."""

    class Flag:
        requested = False

    flag = Flag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if flag.requested:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        flag.requested = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------------------- 6. the file


def _lora_tensors(trained: Mapping[str, Mapping[str, Any]], scale: float) -> dict:
    """``transformer.*`` / ``transformer_2.*`` keys; ``scale`` (alpha / rank) folded into ``lora_B``
    so diffusers, which loads a file without peft metadata at a scale of 1, applies what was trained."""
    tensors = {}
    for label, weights in trained.items():
        for key, value in weights.items():
            tensors[f"{label}.{key}"] = (value * scale if ".lora_B." in key else value).contiguous()
    return tensors


def _metadata(family: str, trigger: str, config: LoraTrainingConfig, data_hash: str,
              experts: Mapping[str, tuple[float, float]], items: int, name: str) -> dict[str, str]:  # fmt: skip
    return {
        "format": "pt",
        BASE_MODEL_METADATA_KEY: family,
        "brandstudio.name": name,
        "brandstudio.trigger": trigger,
        "brandstudio.rank": str(config.rank),
        "brandstudio.alpha": str(config.alpha or config.rank),
        "brandstudio.steps": str(config.steps),
        "brandstudio.learning_rate": repr(config.learning_rate),
        "brandstudio.target_modules": ",".join(config.target_modules),
        "brandstudio.experts": json.dumps({k: list(v) for k, v in experts.items()}),
        "brandstudio.data_sha256": data_hash,
        "brandstudio.items": str(items),
        "brandstudio.seed": str(config.seed),
        "brandstudio.version": VERSION,
    }


def _plot_losses(path: Path, losses: Mapping[str, Sequence[float]], name: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    for label, values in losses.items():
        if values:
            ax.plot(np.arange(1, len(values) + 1), values, lw=0.8, alpha=0.35, label=None)
            window = max(1, len(values) // 20)
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            ax.plot(
                np.arange(window, len(values) + 1),
                smooth,
                lw=1.6,
                label=f"{_EXPERT_LABELS.get(label, label)} ({label})",
            )
    ax.set_xlabel("step")
    ax.set_ylabel("flow-matching loss")
    ax.set_title(f"LoRA `{name}`: loss per step (light) and its moving average")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())
