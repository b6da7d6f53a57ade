"""Speed presets and memory plans: string-keyed registries and the pure rules that pick them.

A **preset** says how a clip is sampled; a **memory plan** says where the weights live while it
is. Presets change the pixels (and so enter the scene-cache key); memory plans never do (the
same spec gives bit-identical frames under every plan on one machine).

==============  ===========================================================================
preset          what it does
==============  ===========================================================================
``quality``     the official sampler settings of the model family (Wan2.2 T2V-A14B: 40 steps,
                flow shift 12, guidance 4.0 high / 3.0 low), exact attention, no caching
``balanced``    the same numbers plus a diffusers cache hook on *each expert*
                (``[model.balanced] cache``: MagCache calibrated for each expert's own step
                count, FirstBlockCache or TaylorSeer), ``compile_repeated_blocks`` on CUDA
                and the best exact attention kernel installed (flash-attn 3, flash-attn 2,
                else PyTorch SDPA)
``fast``        a step-distilled LoRA (e.g. lightx2v's, supplied by the user in
                ``[model.fast] lora``) in both experts at per-expert weights, 4 steps,
                guidance 1 (no CFG: one transformer pass per step), compile and best attention
==============  ===========================================================================

Which numbers ``quality`` uses: **the profile's explicit values win** (they are the brand's
choice: a ``steps = 4`` written in ``brand.toml`` is honoured); any of ``steps``,
``guidance_high``, ``guidance_low``, ``flow_shift`` *not written* in ``brand.toml`` takes the
official value of the loaded model family (:data:`OFFICIAL_SETTINGS`), or the schema default
for a family without one (the tiny model, Wan2.1). ``balanced`` samples with the same numbers;
``fast`` takes its steps and optional shift from ``[model.fast]`` and always guidance 1.

==================  ========================================================================
memory plan         where the weights are
==================  ========================================================================
``resident``        both experts and the VAE on the GPU, the text encoder visiting it for the
                    prompt encoding only (fastest; A14B needs ~72 GB at 720p)
``swap``            one of text encoder / high-noise expert / low-noise expert on the GPU at
                    a time; the idle expert goes to the CPU when the sampler crosses the
                    expert boundary, and back at the next call (~40 GB for A14B)
``group-offload``   diffusers group offloading, one transformer block at a time, prefetched
                    on a CUDA stream (~15 GB for A14B at 720p)
``auto``            the fastest plan that fits the free GPU memory at the requested size
                    (:func:`choose_memory_plan`); on a CPU: ``resident``
==================  ========================================================================

``vae_tiling`` (decode the VAE in tiles) is independent of the plan.

Cache hooks and the diffusers traps they avoid (see :mod:`brandstudio.generation.runtime`):

* MagCache counts steps per hooked model: with one config for both experts neither reaches its
  ``num_inference_steps``, the magnitude ratios are read at the wrong steps and the state is not
  reset; brandstudio gives each expert a config with *its own* step count and ratios calibrated
  on *its own* steps.
* TaylorSeer's default identifiers (``^blocks.*attn``, matched with ``re.fullmatch``) match no
  Wan module (they are named ``blocks.N.attn1`` / ``attn2``): brandstudio passes Wan's names.
* FasterCache is refused: it approximates the unconditional branch from a batch that holds both
  CFG halves, but Wan runs the conditional and unconditional passes separately.

Example:
    >>> from brandstudio.profile.schema import ModelSection
    >>> s = resolve_preset("quality", "wan2.2-ti2v-5b", ModelSection())
    >>> (s.steps, s.guidance_high, s.flow_shift)
    (50, 5.0, 5.0)
    >>> s = resolve_preset("quality", "wan2.2-ti2v-5b", ModelSection(steps=30))
    >>> s.steps, s.sources["steps"]
    (30, 'profile')
    >>> choose_memory_plan(48 * GB, estimate_memory(A14B_GEOMETRY, 1280, 720, 81))
    'swap'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from brandstudio.errors import GenerationError, RequestError

if TYPE_CHECKING:  # pragma: no cover
    from brandstudio.profile.schema import ModelSection

__all__ = [
    "A14B_GEOMETRY",
    "CACHE_HOOKS",
    "GB",
    "MEMORY_PLANS",
    "OFFICIAL_SETTINGS",
    "PLAN_ORDER",
    "PRESETS",
    "QUANTIZATIONS",
    "TI2V_5B_GEOMETRY",
    "CacheHook",
    "FastLora",
    "MemoryEstimate",
    "ModelGeometry",
    "OfficialSettings",
    "Preset",
    "PresetSettings",
    "choose_memory_plan",
    "estimate_memory",
    "parse_parallel",
    "plan_that_fits",
    "resolve_preset",
]

GB = 10**9
"""Bytes in a gigabyte (decimal, like GPU marketing and ``nvidia-smi`` totals in GB)."""


# -- presets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """One entry of :data:`PRESETS`.

    Attributes:
        name: ``"quality"``, ``"balanced"`` or ``"fast"``.
        description: one line for docs and ``--help``.
        cache: use the profile's ``[model.balanced]`` cache hook.
        distilled: use the step-distilled LoRA of ``[model.fast]`` (4 steps, no CFG).
        attention: ``"native"`` (PyTorch SDPA) or ``"best"`` (the best exact kernel installed).
        compile: ``compile_repeated_blocks`` on both experts when on CUDA.
    """

    name: str
    description: str
    cache: bool = False
    distilled: bool = False
    attention: str = "native"
    compile: bool = False


PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        "quality": Preset("quality", "the model family's official sampler settings, nothing approximated"),
        "balanced": Preset(
            "balanced",
            "official settings + a cache hook per expert, regional compile, best attention kernel",
            cache=True,
            attention="best",
            compile=True,
        ),
        "fast": Preset(
            "fast",
            "a step-distilled LoRA in both experts: 4 steps, no CFG, compile, best attention kernel",
            distilled=True,
            attention="best",
            compile=True,
        ),
    }
)
"""The speed presets by name."""


@dataclass(frozen=True)
class OfficialSettings:
    """The sampler settings a model family was released with (its authors' defaults)."""

    steps: int
    guidance_high: float
    guidance_low: float
    flow_shift: float


OFFICIAL_SETTINGS: Mapping[str, OfficialSettings] = MappingProxyType(
    {
        "wan2.2-t2v-a14b": OfficialSettings(40, 4.0, 3.0, 12.0),
        "wan2.2-i2v-a14b": OfficialSettings(40, 3.5, 3.5, 5.0),
        "wan2.2-ti2v-5b": OfficialSettings(50, 5.0, 5.0, 5.0),
    }
)
"""Official settings per model family (Wan2.2 release configs); others use the profile's values."""

MEMORY_PLANS: tuple[str, ...] = ("auto", "resident", "swap", "group-offload")
"""Memory plans by name; ``auto`` picks one of the others."""

PLAN_ORDER: tuple[str, ...] = ("resident", "swap", "group-offload")
"""Concrete plans, fastest first: ``auto`` takes the first that fits."""

CACHE_HOOKS: tuple[str, ...] = ("mag", "first-block", "taylorseer", "none")
"""Cache hooks ``[model.balanced] cache`` accepts."""

REFUSED_CACHE_HOOKS: Mapping[str, str] = MappingProxyType(
    {
        name: (
            "FasterCache does not work with Wan: it approximates the unconditional CFG branch from a "
            "batch holding both halves, but Wan runs the conditional and unconditional passes separately"
        )
        for name in ("faster", "faster-cache", "fastercache", "faster_cache")
    }
)
"""Cache hooks that are known not to work on Wan, with the reason."""

QUANTIZATIONS: tuple[str, ...] = ("none", "int8", "fp8", "fp8-dynamic")
"""Expert weight quantizations (torchao): int8 / fp8 weight-only, fp8 weights and activations."""

ATTENTION_CHOICES: tuple[str, ...] = ("auto", "native", "flash", "flash3", "sage")
"""``[model] attention``: ``auto`` = as the preset says; the rest force one kernel."""

LOSSY_ATTENTION = frozenset({"sage"})
"""Attention kernels that approximate (SageAttention quantizes Q/K to int8): they change pixels,
so they enter the scene-cache key and ``best`` never picks them."""


@dataclass(frozen=True)
class CacheHook:
    """The cache hook of a preset, applied to each expert separately.

    Attributes:
        kind: ``"none"``, ``"mag"``, ``"first-block"`` or ``"taylorseer"``.
        threshold: MagCache accumulated-error / FirstBlockCache residual threshold
            (None: diffusers' default, 0.06 / 0.05).
        retention: MagCache: fraction of each expert's own steps never skipped.
        max_skip_steps: MagCache: most consecutive skipped steps.
        interval: TaylorSeer: steps between full computations.
        warmup: TaylorSeer: full steps at the start of each expert's run.
    """

    kind: str = "none"
    threshold: float | None = None
    retention: float = 0.2
    max_skip_steps: int = 3
    interval: int = 4
    warmup: int = 2

    def key(self) -> dict[str, Any]:
        """The fields that change pixels (all of them, for an active hook)."""
        return {"kind": "none"} if self.kind == "none" else asdict(self)


@dataclass(frozen=True)
class FastLora:
    """The step-distilled LoRA of the ``fast`` preset.

    Attributes:
        path: the resolved ``.safetensors`` file inside the profile.
        sha256: its hash (from the profile loader), for the scene-cache key.
        weight_high: strength in the high-noise expert (0 skips it).
        weight_low: strength in the low-noise expert (0 skips it).
        fuse: fuse it (with the brand's LoRAs) into the weights of *both* experts.
        base_model: the model family it was trained for ("" = not declared).
    """

    path: Path
    sha256: str
    weight_high: float = 1.0
    weight_low: float = 1.0
    fuse: bool = True
    base_model: str = ""

    ADAPTER_NAME = "fast-distill"


@dataclass(frozen=True)
class PresetSettings:
    """A preset resolved for one model family and profile: what a render actually uses.

    Attributes:
        preset: the preset's name.
        steps, guidance_high, guidance_low, flow_shift: the sampler numbers.
        cache: the cache hook (``kind="none"`` for none).
        fast_lora: the step-distilled LoRA (``fast`` only).
        attention: ``"native"``, ``"best"`` or a forced kernel (``"flash3"``, ``"sage"``, ...).
        compile: ``compile_repeated_blocks`` when on CUDA (``"auto"``), always (``"on"``), never (``"off"``).
        sources: where each sampler number came from (``"profile"``, ``"official <family>"``,
            ``"default"``, ``"[model.fast]"``, ``"fast: no CFG"``).
    """

    preset: str
    steps: int
    guidance_high: float
    guidance_low: float
    flow_shift: float
    cache: CacheHook = CacheHook()
    fast_lora: FastLora | None = None
    attention: str = "native"
    compile: str = "off"
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def key_fields(self) -> dict[str, Any]:
        """What about the preset changes pixels, beyond the spec's own numbers (for the scene cache).

        The preset name, the cache hook, the distilled LoRA's hash and weights, and the
        attention kernel when it approximates (SageAttention). Left out on purpose: compile,
        exact attention kernels and fusing, which change only float rounding, like the device.

        Example:
            >>> PresetSettings("quality", 40, 4.0, 3.0, 12.0).key_fields()["cache"]
            {'kind': 'none'}
        """
        lora = self.fast_lora
        return {
            "name": self.preset,
            "cache": self.cache.key(),
            "fast_lora": None
            if lora is None
            else {
                "sha256": lora.sha256,
                "weight_high": float(lora.weight_high),
                "weight_low": float(lora.weight_low),
            },
            "attention": self.attention if self.attention in LOSSY_ATTENTION else "exact",
        }

    def record(self) -> dict[str, Any]:
        """JSON-ready description for ``RenderResult.generation``."""
        lora = self.fast_lora
        return {
            "preset": self.preset,
            "cache_hook": self.cache.key(),
            "fast_lora": None
            if lora is None
            else {
                "file": lora.path.name,
                "sha256": lora.sha256,
                "weight_high": float(lora.weight_high),
                "weight_low": float(lora.weight_low),
                "fused": bool(lora.fuse),
            },
            "sources": dict(self.sources),
        }


def _fast_missing(name: str) -> RequestError:
    return RequestError(
        f"the `{name}` preset needs a step-distilled LoRA, but the profile has no `[model.fast]` with `lora`",
        file="brand.toml",
        field="model.fast.lora",
        value=None,
        fix='add to brand.toml: [model.fast] lora = "loras/lightx2v.safetensors" (the distilled LoRA for '
        "your model, copied into the profile; weight_high / weight_low / steps are optional), "
        "or use preset 'quality' or 'balanced'",
    )


def resolve_preset(
    name: str | None,
    model_family: str,
    model: ModelSection,
    *,
    fast_lora_path: Path | None = None,
    fast_lora_sha256: str | None = None,
) -> PresetSettings:
    """The effective settings of preset ``name`` for ``model_family`` and the profile's ``[model]``.

    Args:
        name: a key of :data:`PRESETS`; ``None`` = the profile's ``[model] preset``.
        model_family: e.g. ``"wan2.2-t2v-a14b"`` or ``"tiny-wan2.2"`` (see ``model_family_of``).
        model: the profile's ``[model]`` section.
        fast_lora_path: the resolved ``[model.fast] lora`` (the loader's asset); needed by ``fast``.
        fast_lora_sha256: its hash (the loader's); computed from the file when not given.

    Raises:
        RequestError: an unknown preset, or ``fast`` without ``[model.fast] lora``.

    Example:
        >>> from brandstudio.profile.schema import ModelSection
        >>> resolve_preset("balanced", "tiny-wan2.2", ModelSection(steps=4)).cache.kind
        'mag'
    """
    name = model.preset if name is None else name
    preset = PRESETS.get(name) if isinstance(name, str) else None
    if preset is None:
        raise RequestError(
            f"unknown speed preset {name!r}",
            field="preset",
            value=name,
            fix=f"use one of {', '.join(PRESETS)}",
        )
    # 1. the sampler numbers: explicit profile values, else the family's official ones, else defaults
    official = OFFICIAL_SETTINGS.get(model_family.lower())
    numbers: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in ("steps", "guidance_high", "guidance_low", "flow_shift"):
        if key in model.model_fields_set or official is None:
            numbers[key] = getattr(model, key)
            sources[key] = "profile" if key in model.model_fields_set else "default"
        else:
            numbers[key] = getattr(official, key)
            sources[key] = f"official {model_family.lower()}"
    # 2. per preset
    cache = CacheHook()
    fast_lora = None
    if preset.cache:
        b = model.balanced
        cache = CacheHook(
            kind=b.cache,
            threshold=b.threshold,
            retention=b.retention,
            max_skip_steps=b.max_skip_steps,
            interval=b.interval,
            warmup=b.warmup,
        )
    if preset.distilled:
        f = model.fast
        if f is None or fast_lora_path is None:
            raise _fast_missing(preset.name)
        if fast_lora_sha256 is None:
            import hashlib

            fast_lora_sha256 = hashlib.sha256(Path(fast_lora_path).read_bytes()).hexdigest()
        fast_lora = FastLora(
            path=Path(fast_lora_path),
            sha256=fast_lora_sha256,
            weight_high=f.weight_high,
            weight_low=f.weight_low,
            fuse=f.fuse,
            base_model=f.base_model or "",
        )
        numbers["steps"], sources["steps"] = f.steps, "[model.fast]"
        numbers["guidance_high"] = numbers["guidance_low"] = 1.0
        sources["guidance_high"] = sources["guidance_low"] = "fast: no CFG"
        if f.flow_shift is not None:
            numbers["flow_shift"], sources["flow_shift"] = f.flow_shift, "[model.fast]"
    attention = model.attention if model.attention != "auto" else preset.attention
    compile_ = model.compile if model.compile != "auto" else ("auto" if preset.compile else "off")
    return PresetSettings(
        preset=preset.name,
        steps=int(numbers["steps"]),
        guidance_high=float(numbers["guidance_high"]),
        guidance_low=float(numbers["guidance_low"]),
        flow_shift=float(numbers["flow_shift"]),
        cache=cache,
        fast_lora=fast_lora,
        attention=attention,
        compile=compile_,
        sources=MappingProxyType(sources),
    )


def check_cache_hook(kind: str) -> str:
    """``kind`` if it is a cache hook brandstudio applies; a clear error otherwise.

    Example:
        >>> check_cache_hook("first-block")
        'first-block'
        >>> check_cache_hook("faster")
        Traceback (most recent call last):
        ...
        brandstudio.errors.RequestError: FasterCache does not work with Wan: ...
    """
    if kind in CACHE_HOOKS:
        return kind
    key = str(kind).lower()
    if key in REFUSED_CACHE_HOOKS:
        raise RequestError(
            REFUSED_CACHE_HOOKS[key],
            file="brand.toml",
            field="model.balanced.cache",
            value=kind,
            fix='use cache = "mag" (MagCache, calibrated per expert) or "first-block"',
        )
    raise RequestError(
        f"unknown cache hook {kind!r}",
        file="brand.toml",
        field="model.balanced.cache",
        value=kind,
        fix=f"use one of {', '.join(CACHE_HOOKS)}",
    )


def parse_parallel(value: str | None) -> tuple[str, int] | None:
    """``"ulysses:2"`` -> ``("ulysses", 2)``; ``None`` / ``"none"`` -> ``None``.

    Example:
        >>> parse_parallel("ring:4")
        ('ring', 4)
    """
    if value is None or value == "none":
        return None
    kind, _, degree = str(value).partition(":")
    if kind not in ("ulysses", "ring") or not degree.isdigit() or int(degree) < 2:
        raise RequestError(
            f"`parallel` must be 'ulysses:N' or 'ring:N' with N >= 2 GPUs, got {value!r}",
            field="parallel",
            value=value,
            fix="use e.g. parallel='ulysses:2' and start the script with `torchrun --nproc-per-node 2`",
        )
    return kind, int(degree)


# -- memory ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelGeometry:
    """Sizes of a Wan pipeline that decide its memory, from a loaded pipeline or from configs.

    Attributes:
        text_encoder: bytes of the text encoder weights (0 when prompt embeddings are given).
        experts: bytes of each transformer expert (one entry for single-model checkpoints).
        block: bytes of the largest transformer block.
        expert_rest: bytes of an expert outside its blocks (embeddings, head).
        vae: bytes of the VAE weights.
        dim, ffn_dim: the transformer's hidden and FFN widths.
        patch: the transformer's (t, h, w) patch size.
        vae_spatial, vae_temporal: the VAE's compression factors.
        vae_channels: channels of the VAE decoder at its highest resolution.
        vae_patch: the VAE's pixel patch (2 for the Wan2.2 VAE: it decodes at half resolution).
        act_bytes: bytes per activation element (2 for bf16, 4 for fp32).
    """

    text_encoder: int
    experts: tuple[int, ...]
    block: int
    expert_rest: int
    vae: int
    dim: int
    ffn_dim: int
    patch: tuple[int, int, int] = (1, 2, 2)
    vae_spatial: int = 8
    vae_temporal: int = 4
    vae_channels: int = 96
    vae_patch: int = 1
    act_bytes: int = 2

    @classmethod
    def from_pipeline(cls, pipe) -> ModelGeometry:
        """Measure a loaded ``WanPipeline`` (parameters and buffers, as stored)."""

        def nbytes(module) -> int:
            if module is None:
                return 0
            total = 0
            for t in list(module.parameters()) + list(module.buffers()):
                total += t.numel() * t.element_size()
            return total

        experts = [m for m in (pipe.transformer, pipe.transformer_2) if m is not None]
        main = experts[0]
        blocks = list(main.blocks)
        block = max((nbytes(b) for b in blocks), default=0)
        cfg = main.config
        vae_cfg = pipe.vae.config
        decoder_base = vae_cfg.get("decoder_base_dim") or vae_cfg.get("base_dim", 96)
        return cls(
            text_encoder=nbytes(pipe.text_encoder),
            experts=tuple(nbytes(m) for m in experts),
            block=block,
            expert_rest=max(nbytes(m) - sum(nbytes(b) for b in m.blocks) for m in experts),
            vae=nbytes(pipe.vae),
            dim=int(cfg.num_attention_heads * cfg.attention_head_dim),
            ffn_dim=int(cfg.ffn_dim),
            patch=tuple(int(p) for p in cfg.patch_size),
            vae_spatial=int(pipe.vae_scale_factor_spatial),
            vae_temporal=int(pipe.vae_scale_factor_temporal),
            vae_channels=int(decoder_base),
            vae_patch=int(vae_cfg.get("patch_size") or 1),
            act_bytes=next(main.parameters()).element_size() if main.dtype.is_floating_point else 2,
        )


def _wan_expert_params(layers: int, dim: int, ffn: int, in_ch: int, text_dim: int = 4096) -> tuple[int, int]:
    """(parameters per block, parameters outside the blocks) of a WanTransformer3DModel."""
    attn = 4 * (dim * dim + dim) + 2 * dim  # q, k, v, out + q/k RMS norms
    block = (
        2 * attn + 2 * dim * ffn + ffn + dim + 3 * dim + 6 * dim
    )  # self + cross attn, ffn, norm, modulation
    rest = (
        in_ch * 4 * dim
        + dim
        + text_dim * dim
        + dim * dim
        + 256 * dim
        + dim * dim
        + 6 * dim * dim
        + dim * in_ch * 4
    )
    return block, rest


def _geometry(
    layers: int, dim: int, ffn: int, in_ch: int, n_experts: int, vae_spatial: int, vae_ch: int, vae_patch: int
) -> ModelGeometry:
    block, rest = _wan_expert_params(layers, dim, ffn, in_ch)
    expert = 2 * (layers * block + rest)
    return ModelGeometry(
        text_encoder=2 * 5_680_000_000,  # umt5-xxl encoder, bf16
        experts=(expert,) * n_experts,
        block=2 * block,
        expert_rest=2 * rest,
        vae=4 * (127_000_000 if vae_ch == 96 else 705_000_000),  # float32 VAE
        dim=dim,
        ffn_dim=ffn,
        vae_spatial=vae_spatial,
        vae_channels=vae_ch,
        vae_patch=vae_patch,
    )


A14B_GEOMETRY = _geometry(40, 5120, 13824, 16, 2, 8, 96, 1)
"""Wan2.2 T2V-A14B in bf16 (two 14B experts, umt5-xxl, Wan2.1 VAE), from the reference configs."""

TI2V_5B_GEOMETRY = _geometry(30, 3072, 14336, 48, 1, 16, 256, 2)
"""Wan2.2 TI2V-5B in bf16 (one 5B model, umt5-xxl, Wan2.2 VAE), from the reference configs."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak accelerator bytes of one generation, per memory plan.

    Attributes:
        need: plan name -> bytes (``resident``, ``swap``, ``group-offload``).
        transformer_activations: peak activations of one transformer pass.
        vae_activations: peak activations of the VAE decode.
        tokens: the transformer's sequence length.
    """

    need: Mapping[str, int]
    transformer_activations: int
    vae_activations: int
    tokens: int

    def describe(self, plan: str) -> str:
        return f"~{self.need[plan] / GB:.1f} GB"


OVERHEAD_BYTES = int(1.5 * GB)
"""CUDA context, cuBLAS workspaces and allocator slack counted on top of every plan."""


def estimate_memory(
    geometry: ModelGeometry, width: int, height: int, num_frames: int, *, vae_tiling: bool = False
) -> MemoryEstimate:
    """Estimate the peak GPU memory of generating ``width x height x num_frames`` under each plan.

    Weights are counted as stored. A transformer pass keeps about ``tokens x (4 dim + ffn)``
    activations alive (q, k, v, attention output and the FFN's hidden layer; flash/SDPA
    attention never materialises the score matrix), x1.5 for temporaries. The Wan VAE decodes
    causally one latent frame (4 video frames) at a time, with a 2-frame cache, in float32:
    about ``18 x H x W x channels x 4`` bytes at its highest resolution (H/2 x W/2 for the
    patched Wan2.2 VAE), or a 256 px tile's worth when tiling. Under ``resident`` the text
    encoder is on the GPU only while nothing else runs. The decoded video (float32) and
    :data:`OVERHEAD_BYTES` come on top.

    Example:
        >>> e = estimate_memory(A14B_GEOMETRY, 1280, 720, 81)
        >>> e.tokens
        75600
        >>> 60 * GB < e.need["resident"] < 80 * GB, e.need["swap"] < 45 * GB
        (True, True)
    """
    pt, ph, pw = geometry.patch
    s, t = geometry.vae_spatial, geometry.vae_temporal
    tokens = (((num_frames - 1) // t + 1) // pt) * (height // (s * ph)) * (width // (s * pw))
    act = int(tokens * (4 * geometry.dim + geometry.ffn_dim) * geometry.act_bytes * 1.5)
    area = width * height // geometry.vae_patch**2
    area = min(area, 256 * 256) if vae_tiling else area
    vae_act = int(18 * area * geometry.vae_channels * 4)
    video = 2 * num_frames * width * height * 3 * 4
    peak_act = max(act, vae_act)
    base = geometry.vae + video + OVERHEAD_BYTES
    experts = geometry.experts
    need = {
        "resident": sum(experts) + max(geometry.text_encoder, peak_act) + base,
        "swap": max(geometry.text_encoder, max(experts)) + peak_act + base,
        "group-offload": 2 * geometry.block + geometry.expert_rest + peak_act + base,
    }
    return MemoryEstimate(
        need=MappingProxyType(need), transformer_activations=act, vae_activations=vae_act, tokens=tokens
    )


def plan_that_fits(free_bytes: int, estimate: MemoryEstimate, *, margin: float = 0.92) -> str | None:
    """The fastest concrete plan whose estimate fits in ``margin x free_bytes``, or None.

    Example:
        >>> e = estimate_memory(A14B_GEOMETRY, 1280, 720, 81)
        >>> plan_that_fits(141 * GB, e), plan_that_fits(48 * GB, e), plan_that_fits(24 * GB, e)
        ('resident', 'swap', 'group-offload')
        >>> plan_that_fits(4 * GB, e) is None
        True
    """
    for plan in PLAN_ORDER:
        if estimate.need[plan] <= free_bytes * margin:
            return plan
    return None


def choose_memory_plan(free_bytes: int | None, estimate: MemoryEstimate, *, margin: float = 0.92) -> str:
    """The plan ``auto`` uses: ``resident`` without an accelerator (``free_bytes`` None), else the
    fastest plan that fits (:func:`plan_that_fits`).

    Raises:
        GenerationError: nothing fits, naming the smallest need and what to change.

    Example:
        >>> choose_memory_plan(None, estimate_memory(A14B_GEOMETRY, 832, 480, 81))
        'resident'
        >>> choose_memory_plan(80 * GB, estimate_memory(A14B_GEOMETRY, 832, 480, 81))
        'resident'
    """
    if free_bytes is None:
        return "resident"
    plan = plan_that_fits(free_bytes, estimate, margin=margin)
    if plan is None:
        raise GenerationError(
            f"no memory plan fits: even `group-offload` needs {estimate.describe('group-offload')} and "
            f"{free_bytes / GB:.1f} GB of GPU memory are free",
            field="model.memory",
            value="auto",
            fix="render smaller (the post stage upscales), set [model] vae_tiling = true and "
            'quantization = "int8", or free the GPU (other processes hold memory)',
        )
    return plan


def _ceil_gb(n: int) -> str:
    return f"{math.ceil(n / GB * 10) / 10:.1f} GB"


def oom_advice(plan: str, capacity: int | None, estimate: MemoryEstimate) -> tuple[str, str, str | None]:
    """(message, fix, suggested plan) for an out-of-memory error under ``plan``.

    ``capacity`` is the GPU memory this process can use (free + what it holds), or None when
    unknown. The suggestion is the fastest plan *slower than* ``plan`` whose estimate fits
    (``plan`` itself just failed, whatever its estimate said); None when none fits.

    Example:
        >>> e = estimate_memory(A14B_GEOMETRY, 1280, 720, 81)
        >>> oom_advice("resident", 48 * GB, e)[2]
        'swap'
        >>> oom_advice("swap", 24 * GB, e)[2]
        'group-offload'
        >>> oom_advice("group-offload", 8 * GB, e)[2] is None
        True
    """
    order = list(PLAN_ORDER)
    later = order[order.index(plan) + 1 :] if plan in order else order
    have = "an unknown amount of GPU memory" if capacity is None else f"{capacity / GB:.1f} GB usable"
    message = f"memory plan `{plan}` needs {estimate.describe(plan) if plan in order else '?'} ({have})"
    fits = [p for p in later if capacity is None or estimate.need[p] <= capacity * 0.92]
    if fits:
        choice = fits[0]
        fix = (
            f'use memory plan "{choice}" (estimated {estimate.describe(choice)}): '
            f'[model] memory = "{choice}", render(..., memory="{choice}") or --memory {choice}; '
            "or render at a lower resolution or fewer frames and upscale in the post stage"
        )
        return message, fix, choice
    fix = (
        "no memory plan fits at this size: render smaller (the post stage upscales), set [model] "
        'vae_tiling = true and quantization = "int8", or free the GPU'
    )
    return message, fix, None
