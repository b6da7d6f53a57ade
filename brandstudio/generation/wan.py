"""Wan2.x text-to-video through diffusers' ``WanPipeline``, with LoRAs per expert.

:class:`WanGenerator` loads a pipeline once (``WanPipeline.from_pretrained``: a hub id, a
local directory, or ``"tiny"`` for the offline toy model), loads the brand's LoRAs into both
Wan2.2 experts with one weight per expert, and renders :class:`~brandstudio.generation.base.GenerationSpec`
values into :data:`~brandstudio.frames.Frames`.

Wan2.2 A14B is a mixture of two experts: ``transformer`` denoises the high-noise steps
(timestep >= ``boundary_ratio`` x 1000) with ``guidance_high``, ``transformer_2`` the rest
with ``guidance_low``. A LoRA is loaded into each expert separately, so a brand can e.g. apply
its film look only where detail is formed (low noise).

Example:
    >>> from brandstudio.generation.base import GenerationSpec
    >>> from brandstudio.generation.wan import WanGenerator
    >>> gen = WanGenerator("tiny")                                   # doctest: +SKIP
    >>> spec = GenerationSpec("morning coffee ritual", "blurry", seed=1, width=64, height=48,
    ...                       num_frames=5, steps=2, guidance_high=4.0, guidance_low=3.0,
    ...                       flow_shift=3.0)
    >>> gen.generate(spec).shape                                     # doctest: +SKIP
    (5, 48, 64, 3)
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from brandstudio.errors import BrandStudioError, GenerationError, LoRAError, RequestError
from brandstudio.frames import from_unit_float
from brandstudio.generation.base import GenerationSpec, LoraAdapter
from brandstudio.generation.lora import check_lora_fits, inspect_lora

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["WanGenerator", "model_family_of"]

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}
_MAX_SEED = 2**63 - 1


def model_family_of(pipe, source: str | Path | None = None) -> str:
    """The model family of a loaded Wan pipeline, used to match LoRAs to models.

    A ``brandstudio.json`` marker in a local model directory wins (the tiny model says
    ``"tiny-wan2.2"``). Otherwise it is read from the components' config:

    ==============================  ======================
    two experts, in_channels 16     ``"wan2.2-t2v-a14b"``
    two experts, in_channels 36     ``"wan2.2-i2v-a14b"``
    one model, in_channels 48       ``"wan2.2-ti2v-5b"``
    one model, in_channels 36       ``"wan2.1-i2v"``
    anything else                   ``"wan2.1-t2v"``
    ==============================  ======================
    """
    if source is not None:
        marker = Path(source) / "brandstudio.json"
        if marker.is_file():
            try:
                declared = json.loads(marker.read_text(encoding="utf-8")).get("base_model")
            except (OSError, ValueError):
                declared = None
            if declared:
                return str(declared)
    main = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
    in_channels = main.config.in_channels
    two_experts = getattr(pipe, "transformer_2", None) is not None and pipe.transformer is not None
    if two_experts:
        return "wan2.2-i2v-a14b" if in_channels == 36 else "wan2.2-t2v-a14b"
    if in_channels == 48:
        return "wan2.2-ti2v-5b"
    if in_channels == 36:
        return "wan2.1-i2v"
    return "wan2.1-t2v"


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(device, str) or not re.fullmatch(r"(cpu|cuda(:\d+)?|mps|xpu(:\d+)?)", device):
        raise RequestError(
            f"`device` must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}",
            field="device",
            value=device,
            fix="use device='auto'",
        )
    return device


def _resolve_dtype(dtype: str, device: str) -> torch.dtype:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in _DTYPES:
        raise RequestError(
            f"`dtype` must be 'auto' or one of {sorted(set(_DTYPES.values()))}, got {dtype!r}",
            field="dtype",
            value=dtype,
            fix="use dtype='auto' (bfloat16 on CUDA, float32 on CPU)",
        )
    return getattr(torch, _DTYPES[dtype])


def _dtype_kwargs(dtype) -> dict:
    """diffusers 0.42 renamed ``torch_dtype`` to ``dtype`` (the old name warns); older ones need it."""
    from diffusers.utils import deprecation_utils

    return {"dtype": dtype} if hasattr(deprecation_utils, "_resolve_dtype") else {"torch_dtype": dtype}


def _adapter_key(name: str) -> str:
    """peft keeps adapters in ModuleDicts, whose keys may not contain '.'."""
    return re.sub(r"[^0-9A-Za-z_-]", "_", name) or "lora"


def _nearest_multiples(value: int, multiple: int) -> str:
    """'64 or 80' for 70 and 16."""
    low = value // multiple * multiple
    return f"{low} or {low + multiple}" if low > 0 else str(multiple)


class WanGenerator:
    """A Wan2.x ``WanPipeline`` loaded once, with the brand's LoRAs, rendering specs into frames.

    Args:
        model: ``"tiny"`` (the offline toy model, built on first use), a hub id such as
            ``"Wan-AI/Wan2.2-T2V-A14B-Diffusers"``, or a local diffusers directory; passed
            unchanged to ``WanPipeline.from_pretrained``.
        loras: adapters to load; each goes into the high-noise expert with ``weight_high`` and
            the low-noise expert with ``weight_low`` (a weight of 0 skips that expert). On a
            one-model checkpoint (Wan2.1, TI2V-5B) ``weight_high`` applies to all steps.
        revision: the hub revision (branch, tag or commit) to load.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        dtype: ``"auto"`` (bfloat16 on CUDA, float32 on CPU), ``"float32"``, ``"bfloat16"`` or
            ``"float16"``. The VAE always runs in float32, as Wan recommends.
        boundary_ratio: override the checkpoint's expert switch point (0 < r < 1).
        memory: memory plan: ``"auto"`` (the fastest that fits the free GPU memory at the first
            requested size; on a CPU ``"resident"``), ``"resident"``, ``"swap"`` (idle expert on
            the CPU) or ``"group-offload"`` (see :mod:`brandstudio.generation.presets`).
        vae_tiling: decode the VAE in tiles (less memory at 720p and above).
        quantization: ``"none"``, ``"int8"``, ``"fp8"`` or ``"fp8-dynamic"`` (torchao, both experts).
        parallel: ``"ulysses:N"`` or ``"ring:N"``: one clip on N GPUs with diffusers context
            parallelism, in both experts; the script must run under ``torchrun --nproc-per-node N``.

    Attributes:
        model_id: the ``model`` string given.
        model_family: e.g. ``"tiny-wan2.2"`` or ``"wan2.2-t2v-a14b"`` (see :func:`model_family_of`).
        pipeline: the loaded ``WanPipeline`` (for presets: offload, VAE tiling, ...).
        runtime: the :class:`~brandstudio.generation.runtime.PipelineRuntime` (memory plan, cache
            hooks, attention kernel, ...); :meth:`configure` switches it.
        loras: the adapters given.

    Raises:
        GenerationError: the model could not be loaded.
        LoRAError: a LoRA does not fit the model (other base model, missing modules, shapes).
        AssetError: a LoRA file is missing or is not safetensors.

    Example:
        >>> import pathlib
        >>> from brandstudio.generation.base import GenerationSpec, LoraAdapter
        >>> film = LoraAdapter("aurora-film",
        ...                    pathlib.Path("brand_profiles/aurora-coffee/loras/aurora-film.safetensors"),
        ...                    weight_high=0.0, weight_low=1.0, base_model="tiny-wan2.2")
        >>> gen = WanGenerator("tiny", loras=[film])                              # doctest: +SKIP
        >>> spec = GenerationSpec("espresso pour, slow motion", "", 42, 64, 48, 5, 2, 4.0, 3.0, 3.0)
        >>> frames = gen.generate(spec)                                           # doctest: +SKIP
        >>> frames.dtype, frames.shape                                            # doctest: +SKIP
        (dtype('uint8'), (5, 48, 64, 3))
    """

    def __init__(
        self,
        model: str = "tiny",
        *,
        loras: Sequence[LoraAdapter] = (),
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        boundary_ratio: float | None = None,
        memory: str = "auto",
        vae_tiling: bool = False,
        quantization: str = "none",
        parallel: str | None = None,
    ) -> None:
        import torch

        from brandstudio.generation.runtime import parallel_device

        self.model_id = model
        self.revision = revision
        self.device = parallel_device(parallel, _resolve_device(device))
        self.memory, self.quantization = memory, quantization
        self.dtype = _resolve_dtype(dtype, self.device)
        self.loras: tuple[LoraAdapter, ...] = tuple(loras)

        # 1. Where the weights are
        from brandstudio.generation.tiny import tiny_model_path

        tiny = tiny_model_path(model)  # "tiny" / "tiny-ti2v": the offline toy models, built on first use
        source = str(tiny[0]) if tiny else model

        # 2. Load the pipeline (the VAE in float32 whatever the transformer dtype)
        self.pipeline = self._load_pipeline(source, torch)
        self.pipeline.set_progress_bar_config(disable=True)

        # 3. The expert switch point
        if boundary_ratio is not None:
            self._set_boundary_ratio(boundary_ratio)

        # 4. The model family, to match LoRAs against; whether it takes a start image (multi-shot continuity)
        self.model_family = model_family_of(self.pipeline, source if Path(source).is_dir() else None)
        from brandstudio.generation.conditioning import image_input_of

        self.image_input = image_input_of(self.pipeline)  # "none" | "optional" | "required"

        # 5. LoRAs, into each expert with its own weight
        self._load_loras(self.loras)

        # 6. Speed and memory: the memory plan, VAE tiling, context parallelism (brandstudio.generation.runtime)
        from brandstudio.generation.runtime import PipelineRuntime

        self.runtime = PipelineRuntime(
            self, memory=memory, vae_tiling=vae_tiling, quantization=quantization, parallel=parallel
        )

    def configure(self, settings=None, *, memory: str | None = None) -> None:
        """Switch this loaded generator to a resolved speed preset and/or memory plan, in place.

        ``settings`` is a :class:`~brandstudio.generation.presets.PresetSettings` (from
        ``resolve_preset``): its cache hook, distilled LoRA, attention kernel and compile
        setting are applied (its sampler numbers go into the :class:`GenerationSpec`).
        ``memory`` is a memory plan name. See :class:`~brandstudio.generation.runtime.PipelineRuntime`.

        Example:
            >>> from brandstudio.generation.presets import resolve_preset           # doctest: +SKIP
            >>> gen.configure(resolve_preset("balanced", gen.model_family, model), memory="swap")  # doctest: +SKIP
        """
        self.runtime.configure(settings, memory=memory)

    def __repr__(self) -> str:
        return (
            f"WanGenerator(model={self.model_id!r}, family={self.model_family!r}, device={self.device!r}, "
            f"loras={[a.name for a in self.loras]!r})"
        )

    def cache_identity(self) -> dict:
        """What about this generator changes the pixels, for the scene cache key.

        The model id and revision (and the tiny model's build version), the model family,
        the transformer dtype, the scheduler class, the expert boundary ratio, and for each LoRA
        its name, the SHA-256 of its file and its two weights. The device is left out on
        purpose: a team shares scenes across machines. LoRA files are hashed once per generator.

        Example:
            >>> WanGenerator("tiny").cache_identity()["model_id"]          # doctest: +SKIP
            'tiny'
        """
        if getattr(self, "_identity", None) is None:
            import hashlib

            from brandstudio.generation.tiny import _TINY_MODELS

            loras = []
            for a in self.loras:
                h = hashlib.sha256()
                with open(a.path, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                loras.append(
                    {
                        "name": a.name,
                        "sha256": h.hexdigest(),
                        "weight_high": float(a.weight_high),
                        "weight_low": float(a.weight_low),
                    }
                )
            boundary = self.pipeline.config.get("boundary_ratio")
            self._identity = {
                "model_id": self.model_id,
                "revision": self.revision,
                "model_version": _TINY_MODELS[self.model_id][1] if self.model_id in _TINY_MODELS else None,
                "model_family": self.model_family,
                "dtype": str(self.dtype).removeprefix("torch."),
                "scheduler": type(self.pipeline.scheduler).__name__,
                "boundary_ratio": None if boundary is None else float(boundary),
                "loras": loras,
                "quantization": self.quantization,
                "vae_tiling": bool(self.runtime.vae_tiling),
            }
        return dict(self._identity)

    # ------------------------------------------------------------------ loading

    def _load_pipeline(self, source: str, torch):
        from diffusers import AutoencoderKLWan

        from brandstudio.generation.conditioning import pipeline_class_for

        try:
            extra = {}
            if self.dtype != torch.float32:
                extra["vae"] = AutoencoderKLWan.from_pretrained(
                    source, subfolder="vae", revision=self.revision, **_dtype_kwargs(torch.float32)
                )
            from brandstudio.generation.runtime import PipelineRuntime, quantization_config
            from brandstudio.generation.tiny import quiet_progress

            quant = quantization_config(self.quantization, self.device)  # torchao on the experts, or None
            if quant is not None:
                extra["quantization_config"] = quant
            with quiet_progress(Path(source).is_dir()):
                pipe = pipeline_class_for(source, self.revision).from_pretrained(  # WanPipeline or WanImageToVideoPipeline
                    source, revision=self.revision, **_dtype_kwargs(self.dtype), **extra
                )
            # without CUDA it goes to the device now; on CUDA the runtime places it per memory plan (step 6)
            return pipe.to(self.device) if PipelineRuntime.place_at_load(self.memory, self.device) else pipe
        except torch.OutOfMemoryError as e:
            raise GenerationError(
                f"out of memory loading `{self.model_id}` on {self.device} under memory plan `{self.memory}`",
                field="model.memory",
                value=self.memory,
                fix='use memory plan "auto" (it picks the fastest plan that fits), "swap" or "group-offload", '
                'or quantization = "int8"',
            ) from e
        except BrandStudioError:
            raise
        except Exception as e:
            raise GenerationError(
                f"could not load the Wan pipeline `{self.model_id}`"
                + (f" (revision {self.revision})" if self.revision else "")
                + f": {type(e).__name__}: {e}",
                field="model",
                value=self.model_id,
                fix="check the model id or local directory (a diffusers-format Wan checkpoint with "
                "model_index.json), the revision and your network / HF cache; use model='tiny' offline",
            ) from e

    def _set_boundary_ratio(self, ratio: float) -> None:
        if not (isinstance(ratio, (int, float)) and 0.0 < float(ratio) < 1.0):
            raise RequestError(
                f"`boundary_ratio` must be between 0 and 1 (exclusive), got {ratio!r}",
                field="boundary_ratio",
                value=ratio,
                fix="use the checkpoint's value (0.875 for Wan2.2 T2V-A14B, 0.9 for I2V-A14B)",
            )
        if self.pipeline.transformer_2 is None:
            raise RequestError(
                f"`boundary_ratio` needs a two-expert (Wan2.2 A14B) model, but `{self.model_id}` has one",
                field="boundary_ratio",
                value=ratio,
                fix="leave boundary_ratio unset for this model",
            )
        self.pipeline.register_to_config(boundary_ratio=float(ratio))

    def _experts(self, adapter: LoraAdapter):
        """(label, module, load_into_transformer_2, weight) for each expert this adapter goes into."""
        pipe = self.pipeline
        experts = []
        if pipe.transformer is not None and adapter.weight_high != 0:
            experts.append(("transformer", pipe.transformer, False, float(adapter.weight_high)))
        if pipe.transformer_2 is not None and adapter.weight_low != 0:
            experts.append(("transformer_2", pipe.transformer_2, True, float(adapter.weight_low)))
        return experts

    def _load_loras(self, adapters: Sequence[LoraAdapter]) -> None:
        active: dict[str, tuple[list[str], list[float]]] = {}
        seen: dict[str, str] = {}
        for adapter in adapters:
            # 1. the entry itself
            key = _adapter_key(adapter.name)
            if key in seen:
                raise LoRAError(
                    f"two LoRAs are named `{adapter.name}` (or names that differ only in punctuation: "
                    f"`{seen[key]}`)",
                    file=str(adapter.path),
                    field="style.loras.name",
                    fix="give every LoRA in the profile a unique name",
                )
            seen[key] = adapter.name
            for label, weight in (("weight_high", adapter.weight_high), ("weight_low", adapter.weight_low)):
                if not isinstance(weight, (int, float)) or not math.isfinite(weight):
                    raise LoRAError(
                        f"LoRA `{adapter.name}`: `{label}` must be a finite number, got {weight!r}",
                        file=str(adapter.path),
                        field=f"style.loras.{label}",
                        fix="use a weight such as 0.8 (0 skips that expert)",
                    )
            # 2. the file, and that it fits each expert it goes into (before diffusers sees it)
            info = inspect_lora(adapter.path)
            experts = self._experts(adapter)
            for _, module, _, _ in experts:
                check_lora_fits(info, module, adapter, self.model_family)
            # 3. load it
            for label, _module, into_2, weight in experts:
                try:
                    with warnings.catch_warnings():
                        # peft warns on every adapter after the first; several adapters are intended
                        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                        self.pipeline.load_lora_weights(
                            str(adapter.path),
                            adapter_name=key,
                            use_safetensors=True,  # never fall back to unpickling
                            load_into_transformer_2=into_2,
                        )
                except Exception as e:
                    raise LoRAError(
                        f"LoRA `{adapter.name}` ({adapter.path.name}) could not be loaded into `{label}` "
                        f"of `{self.model_id}`: {type(e).__name__}: {e}",
                        file=str(adapter.path),
                        field="style.loras",
                        fix=f"check that the LoRA was trained for `{self.model_family}` and is a Wan LoRA "
                        "in the diffusers, original-Wan or musubi/kohya format",
                    ) from e
                names, weights = active.setdefault(label, ([], []))
                names.append(key)
                weights.append(weight)
        # 4. per-expert weights
        for label, (names, weights) in active.items():
            getattr(self.pipeline, label).set_adapters(names, weights=weights)

    # ------------------------------------------------------------------ generating

    def _check_spec(self, spec: GenerationSpec) -> None:
        def bad(field: str, message: str, fix: str) -> RequestError:
            return RequestError(message, field=field, value=getattr(spec, field), fix=fix)

        def is_int(v) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        def is_num(v) -> bool:
            return (
                isinstance(v, (int, float, np.floating, np.integer))
                and not isinstance(v, bool)
                and math.isfinite(v)
            )

        if not isinstance(spec, GenerationSpec):
            raise RequestError(f"`spec` must be a GenerationSpec, got {type(spec).__name__}")
        if not isinstance(spec.prompt, str) or not spec.prompt.strip():
            raise bad("prompt", f"`prompt` must be a non-empty string, got {spec.prompt!r}", "write a prompt")
        if not isinstance(spec.negative_prompt, str):
            raise bad(
                "negative_prompt",
                f"`negative_prompt` must be a string, got {type(spec.negative_prompt).__name__}",
                'use "" for no negative prompt',
            )
        if not is_int(spec.seed) or not 0 <= spec.seed <= _MAX_SEED:
            raise bad(
                "seed", f"`seed` must be an integer in [0, 2**63 - 1], got {spec.seed!r}", "use e.g. seed=0"
            )
        pipe = self.pipeline
        main = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
        multiple = pipe.vae_scale_factor_spatial * main.config.patch_size[1]
        for name in ("height", "width"):
            value = getattr(spec, name)
            if not is_int(value) or value <= 0:
                raise bad(name, f"`{name}` must be a positive integer, got {value!r}", f"use e.g. {name}=480")
            if value % multiple:
                raise bad(
                    name,
                    f"`{name}` must be divisible by {multiple}, got {value}",
                    f"use {_nearest_multiples(value, multiple)}",
                )
        n = spec.num_frames
        if not is_int(n) or n < 1 or (n - 1) % 4:
            near = f"{(n - 1) // 4 * 4 + 1} or {(n - 1) // 4 * 4 + 5}" if is_int(n) and n > 1 else "33"
            raise bad(
                "num_frames",
                f"`num_frames` must be of the form 4k + 1 (1, 5, 9, ..., 33, ..., 81), got {n!r}",
                f"use {near}",
            )
        if not is_int(spec.steps) or spec.steps < 1:
            raise bad("steps", f"`steps` must be a positive integer, got {spec.steps!r}", "use e.g. steps=40")
        for name in ("guidance_high", "guidance_low"):
            value = getattr(spec, name)
            if not is_num(value) or value < 0:
                raise bad(
                    name, f"`{name}` must be a number >= 0, got {value!r}", "use e.g. 4.0 (high) / 3.0 (low)"
                )
        if not is_num(spec.flow_shift) or spec.flow_shift <= 0:
            raise bad(
                "flow_shift", f"`flow_shift` must be a number > 0, got {spec.flow_shift!r}", "use e.g. 12.0"
            )
        rope = main.config.rope_max_seq_len
        grid = max(
            spec.height // multiple, spec.width // multiple, (n - 1) // pipe.vae_scale_factor_temporal + 1
        )
        if grid > rope:
            raise RequestError(
                f"{spec.width}x{spec.height}x{n} frames is too large for `{self.model_id}`: its patch grid "
                f"side {grid} exceeds rope_max_seq_len {rope}",
                fix="render smaller and upscale in the post stage",
            )

    def _set_flow_shift(self, flow_shift: float) -> None:
        scheduler = self.pipeline.scheduler
        if scheduler.config.get("flow_shift") != flow_shift:
            self.pipeline.scheduler = type(scheduler).from_config(
                scheduler.config, flow_shift=float(flow_shift)
            )

    def generate(self, spec: GenerationSpec, image: np.ndarray | None = None) -> np.ndarray:
        """Render ``spec`` into frames: ``uint8`` ``(num_frames, height, width, 3)``.

        Deterministic: the initial noise comes from a CPU ``torch.Generator`` seeded with
        ``spec.seed``, so the same spec gives bit-identical frames on the same machine.

        ``image`` (``uint8`` ``(height, width, 3)``) is a start image, for models with image input
        (``self.image_input`` ``"optional"``: TI2V-5B, ``tiny-ti2v``; ``"required"``: I2V-A14B);
        see :mod:`brandstudio.generation.conditioning`.

        Raises:
            RequestError: the spec is invalid (e.g. "`height` must be divisible by 16, got 700").
            GenerationError: the model failed, e.g. ran out of memory.

        Example:
            >>> frames = WanGenerator("tiny").generate(                      # doctest: +SKIP
            ...     GenerationSpec("tea field at dawn", "", 0, 64, 48, 5, 2, 4.0, 3.0, 3.0))
        """
        import torch

        # 1. Check the request
        self._check_spec(spec)
        from brandstudio.generation.conditioning import check_image, image_call

        check_image(image, image_input=self.image_input, width=spec.width, height=spec.height, model_id=self.model_id)
        pipe = self.pipeline

        # 2. Sampler settings for this call
        self._set_flow_shift(spec.flow_shift)
        generator = torch.Generator(device="cpu").manual_seed(int(spec.seed))
        kwargs = {}
        if pipe.config.boundary_ratio is not None:
            kwargs["guidance_scale_2"] = float(spec.guidance_low)

        # 3. Denoise and decode (from the start image, if any)
        try:
            self.runtime.prepare(spec)  # memory plan for `auto`, per-expert cache hooks
            call, inputs = pipe, {"prompt": spec.prompt, "negative_prompt": spec.negative_prompt}
            if image is not None:
                call, inputs = image_call(pipe, spec, image)
            output = call(
                **inputs,
                height=int(spec.height),
                width=int(spec.width),
                num_frames=int(spec.num_frames),
                num_inference_steps=int(spec.steps),
                guidance_scale=float(spec.guidance_high),
                generator=generator,
                output_type="np",
                **kwargs,
            )
        except torch.OutOfMemoryError as e:
            # names the memory plan that would fit (brandstudio.generation.presets.oom_advice)
            raise self.runtime.oom_error(
                spec, f"generating {spec.width}x{spec.height}x{spec.num_frames} frames"
            ) from e
        except BrandStudioError:
            raise
        except Exception as e:
            raise GenerationError(
                f"`{self.model_id}` failed to generate {spec.width}x{spec.height}x{spec.num_frames} "
                f"frames: {type(e).__name__}: {e}",
                fix="check the model and its LoRAs; report this with the spec if it persists",
            ) from e

        # 4. Into the frame layout
        frames = from_unit_float(output.frames)
        expected = (spec.num_frames, spec.height, spec.width, 3)
        if frames.shape != expected:
            raise GenerationError(
                f"the pipeline returned frames of shape {frames.shape}, expected {expected}"
            )
        return frames
