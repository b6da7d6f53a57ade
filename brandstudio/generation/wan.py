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
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brandstudio.errors import BrandStudioError, GenerationError, RequestError
from brandstudio.files import sha256_file
from brandstudio.frames import from_unit_float
from brandstudio.generation.adapters import load_loras
from brandstudio.generation.base import GenerationSpec, LoraAdapter
from brandstudio.generation.conditioning import check_image, image_call, image_input_of, pipeline_class_for
from brandstudio.generation.devices import dtype_kwargs, resolve_device, resolve_dtype
from brandstudio.generation.experts import pipeline_call_kwargs, step_progress
from brandstudio.generation.logs import quiet_progress
from brandstudio.generation.parallel import parallel_device
from brandstudio.generation.quantize import quantization_config
from brandstudio.generation.runtime import PipelineRuntime
from brandstudio.generation.tiny import MARKER_FILE, tiny_model_path, tiny_model_version
from brandstudio.progress import ProgressCallback, stage_reporter

__all__ = ["WanGenerator", "model_family_of"]

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
        marker = Path(source) / MARKER_FILE
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
            the CPU) or ``"group-offload"`` (see :mod:`brandstudio.generation.memory`).
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
        self.model_id = model
        self.revision = revision
        self.device = parallel_device(parallel, resolve_device(device))
        self.memory, self.quantization = memory, quantization
        self.dtype = resolve_dtype(dtype, self.device)
        self.loras: tuple[LoraAdapter, ...] = tuple(loras)

        # 1. Where the weights are
        tiny = tiny_model_path(model)  # "tiny" / "tiny-ti2v": the offline toy models, built on first use
        source = str(tiny[0]) if tiny else model

        # 2. Load the pipeline (the VAE in float32 whatever the transformer dtype)
        self.pipeline = self._load_pipeline(source)
        self.pipeline.set_progress_bar_config(disable=True)

        # 3. The expert switch point
        if boundary_ratio is not None:
            self._set_boundary_ratio(boundary_ratio)

        # 4. The model family, to match LoRAs against; whether it takes a start image (multi-shot continuity)
        self.model_family = model_family_of(self.pipeline, source if Path(source).is_dir() else None)
        self.image_input = image_input_of(self.pipeline)  # "none" | "optional" | "required"

        # 5. LoRAs, into each expert with its own weight
        load_loras(self.pipeline, self.loras, model_family=self.model_family, model_id=self.model_id)

        # 6. Speed and memory: the memory plan, VAE tiling, context parallelism (brandstudio.generation.runtime)
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
            loras = []
            for a in self.loras:
                loras.append(
                    {
                        "name": a.name,
                        "sha256": sha256_file(a.path),
                        "weight_high": float(a.weight_high),
                        "weight_low": float(a.weight_low),
                    }
                )
            boundary = self.pipeline.config.get("boundary_ratio")
            self._identity = {
                "model_id": self.model_id,
                "revision": self.revision,
                "model_version": tiny_model_version(self.model_id),
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

    def _load_pipeline(self, source: str):
        # both import torch
        import torch
        from diffusers import AutoencoderKLWan

        try:
            extra = {}
            if self.dtype != torch.float32:
                extra["vae"] = AutoencoderKLWan.from_pretrained(
                    source, subfolder="vae", revision=self.revision, **dtype_kwargs(torch.float32)
                )
            quant = quantization_config(self.quantization, self.device)  # torchao on the experts, or None
            if quant is not None:
                extra["quantization_config"] = quant
            with quiet_progress(Path(source).is_dir()):
                pipe = pipeline_class_for(source, self.revision).from_pretrained(  # WanPipeline or WanImageToVideoPipeline
                    source, revision=self.revision, **dtype_kwargs(self.dtype), **extra
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

    def generate(
        self, spec: GenerationSpec, image: np.ndarray | None = None, on_progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Render ``spec`` into frames: ``uint8`` ``(num_frames, height, width, 3)``.

        Deterministic: the initial noise comes from a CPU ``torch.Generator`` seeded with
        ``spec.seed``, so the same spec gives bit-identical frames on the same machine.

        ``image`` (``uint8`` ``(height, width, 3)``) is a start image, for models with image input
        (``self.image_input`` ``"optional"``: TI2V-5B, ``tiny-ti2v``; ``"required"``: I2V-A14B);
        see :mod:`brandstudio.generation.conditioning`.

        ``on_progress`` is called with a :class:`~brandstudio.progress.Progress` after each
        denoising step (``Progress("generation", step, spec.steps + 1, "high-noise expert")``,
        ``"low-noise expert"`` past the boundary, ``"denoising"`` on a single-model checkpoint),
        when the VAE starts decoding (the last step's number again, ``"decoding"``), and when it
        has decoded the frames (``step = total``, ``"decode"``).

        Raises:
            RequestError: the spec is invalid (e.g. "`height` must be divisible by 16, got 700").
            GenerationError: the model failed, e.g. ran out of memory.

        Example:
            >>> frames = WanGenerator("tiny").generate(                      # doctest: +SKIP
            ...     GenerationSpec("tea field at dawn", "", 0, 64, 48, 5, 2, 4.0, 3.0, 3.0))
        """
        import torch  # the seeded noise, and its OutOfMemoryError

        # 1. Check the request
        self._check_spec(spec)
        check_image(image, image_input=self.image_input, width=spec.width, height=spec.height, model_id=self.model_id)
        pipe = self.pipeline

        # 2. Sampler settings for this call
        self._set_flow_shift(spec.flow_shift)
        generator = torch.Generator(device="cpu").manual_seed(int(spec.seed))
        kwargs = pipeline_call_kwargs(pipe, spec)
        report = stage_reporter(on_progress, "generation")
        total = int(spec.steps) + 1  # the denoising steps, then the VAE decode
        if on_progress is not None:  # each step, named by the expert that ran it
            kwargs["callback_on_step_end"] = step_progress(report, total)

        # 3. Denoise and decode (from the start image, if any)
        try:
            self.runtime.prepare(spec)  # memory plan for `auto`, per-expert cache hooks
            call, inputs = pipe, {"prompt": spec.prompt, "negative_prompt": spec.negative_prompt}
            if image is not None:
                call, inputs = image_call(pipe, spec, image)
            output = call(**inputs, generator=generator, output_type="np", **kwargs)
        except torch.OutOfMemoryError as e:
            # names the memory plan that would fit (brandstudio.generation.memory.oom_advice)
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
        report(total, total, "decode")
        return frames
