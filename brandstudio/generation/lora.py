"""LoRA files: inspect them safely and check that they fit the model before loading.

diffusers loads a LoRA that does not fit with a raw traceback deep inside peft (a size
mismatch in ``load_state_dict``), or, worse, silently skips keys it cannot place. brandstudio
checks first and says which file, which model family and how to fix it:

* :func:`inspect_lora` reads the safetensors *header* only (no tensors, no torch): the keys,
  the rank and the base model declared in the metadata. Pickle files (``.bin``, ``.pt``,
  ``.pth``, ``.ckpt``, ``.pkl``, or a "``.safetensors``" that is really a pickle) are refused
  with :class:`~brandstudio.errors.AssetError`: unpickling can run arbitrary code.
* :func:`check_lora_file` is the profile's asset check for a LoRA: the header as above, then
  every tensor finite (:func:`brandstudio.weights.check_finite`: a LoRA full of NaN renders
  black frames), paid once per file content.
* :func:`check_lora_fits` compares a :class:`LoraInfo` with a loaded
  ``WanTransformer3DModel``: the declared base model (profile or file metadata) against the
  model family, every target module, every ``lora_A``/``lora_B`` shape. Problems raise
  :class:`~brandstudio.errors.LoRAError`.

Example:
    >>> import pathlib, tempfile
    >>> from brandstudio.generation.tiny import make_tiny_lora
    >>> path = make_tiny_lora(pathlib.Path(tempfile.mkdtemp()) / "look.safetensors", seed=3)
    >>> info = inspect_lora(path)
    >>> info.rank, info.base_model, info.key_format
    (4, 'tiny-wan2.2', 'diffusers')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from brandstudio.errors import AssetError, LoRAError
from brandstudio.profile.assets import ASSET_CHECKS
from brandstudio.weights import check_finite

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from brandstudio.generation.base import LoraAdapter

__all__ = [
    "BASE_MODEL_METADATA_KEY",
    "PICKLE_SUFFIXES",
    "LoraInfo",
    "check_lora_file",
    "check_lora_fits",
    "expert_prefix",
    "inspect_lora",
]

PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})
"""File suffixes of pickle-based checkpoints, which are never loaded."""

BASE_MODEL_METADATA_KEY = "brandstudio.base_model"
"""The safetensors metadata key in which a LoRA declares the model family it was trained for."""

_CONVERT_FIX = (
    'convert it to safetensors once, in a trusted environment: python -c "import torch; '
    "from safetensors.torch import save_file; "
    "save_file(torch.load('IN', weights_only=True), 'OUT.safetensors')\""
)
_LORA_SUFFIX = re.compile(r"\.(lora_A|lora_B)\.weight$")


@dataclass(frozen=True)
class LoraInfo:
    """What a LoRA file holds, read from its safetensors header.

    Attributes:
        path: the file.
        keys: every tensor name, sorted.
        shapes: tensor name -> shape.
        rank: the largest LoRA rank (``lora_A`` rows / ``lora_down`` rows); 0 if none found.
        base_model: the model family declared in the metadata (``brandstudio.base_model``), or None.
        metadata: the safetensors ``__metadata__`` (str -> str).
        key_format: ``"diffusers"`` (``transformer.blocks...``), ``"wan-original"``
            (``diffusion_model.blocks...``), ``"musubi"`` (``lora_unet_...``) or ``"unknown"``.
    """

    path: Path
    keys: tuple[str, ...] = field(repr=False)
    shapes: Mapping[str, tuple[int, ...]] = field(repr=False)
    rank: int
    base_model: str | None
    metadata: Mapping[str, str] = field(repr=False)
    key_format: str


def _key_format(keys: tuple[str, ...]) -> str:
    if any(k.startswith("diffusion_model.") for k in keys):
        return "wan-original"
    if any(k.startswith("lora_unet_") for k in keys):
        return "musubi"
    if any(k.startswith("transformer.") for k in keys):
        return "diffusers"
    return "unknown"


def _looks_like_pickle(path: Path) -> bool:
    """A torch zip checkpoint starts with ``PK``; a raw pickle with the PROTO opcode 0x80."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def inspect_lora(path: Path, *, profile: str | None = None) -> LoraInfo:
    """Read a LoRA's safetensors header: keys, shapes, rank, declared base model.

    No tensor is loaded and nothing is unpickled, so this is safe and fast on any file.

    Args:
        path: the ``.safetensors`` file.
        profile: the brand profile it belongs to, for the error message.

    Raises:
        AssetError: the file is missing, is a pickle format (by suffix or by content), or is
            not a valid safetensors file.

    Example:
        >>> inspect_lora(pathlib.Path("brand_profiles/aurora-coffee/loras/aurora-film.safetensors"))
        ... # doctest: +SKIP
        LoraInfo(path=..., keys=(...), rank=4, base_model='tiny-wan2.2', key_format='diffusers')
    """
    from safetensors import safe_open  # listed heavy (its torch half is); the header reader is not

    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise AssetError(
            f"LoRA `{path.name}` is a pickle checkpoint ({path.suffix}); brandstudio loads weights from "
            "safetensors only, because unpickling a file can run arbitrary code",
            profile=profile,
            file=str(path),
            fix=_CONVERT_FIX.replace("IN", path.name).replace("OUT", path.stem),
        )
    if not path.is_file():
        raise AssetError(
            f"LoRA file `{path.name}` does not exist",
            profile=profile,
            file=str(path),
            fix="check the `path` of this LoRA in [[style.loras]] (relative to the profile directory)",
        )
    if path.suffix.lower() != ".safetensors":
        raise AssetError(
            f"LoRA `{path.name}` must be a .safetensors file, got suffix `{path.suffix or '(none)'}`",
            profile=profile,
            file=str(path),
            fix="save the adapter with safetensors (`.safetensors`)",
        )
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = dict(f.metadata() or {})
            names = f.keys()
            shapes = {k: tuple(int(d) for d in f.get_slice(k).get_shape()) for k in names}
    except Exception as e:  # SafetensorError, or an OSError reading it
        if _looks_like_pickle(path):
            what = "is a pickle (PyTorch) checkpoint renamed to .safetensors"
        else:
            what = f"is not a valid safetensors file ({e})"
        raise AssetError(
            f"LoRA `{path.name}` {what}; brandstudio loads weights from safetensors only",
            profile=profile,
            file=str(path),
            fix=_CONVERT_FIX.replace("IN", path.name).replace("OUT", path.stem + "-converted"),
        ) from e
    keys = tuple(sorted(shapes))
    ranks = [shapes[k][0] for k in keys if (".lora_A." in k or ".lora_down." in k) and len(shapes[k]) == 2]
    return LoraInfo(
        path=path,
        keys=keys,
        shapes=shapes,
        rank=max(ranks, default=0),
        base_model=metadata.get(BASE_MODEL_METADATA_KEY) or None,
        metadata=metadata,
        key_format=_key_format(keys),
    )


def _diffusers_shapes(info: LoraInfo) -> dict[str, tuple[int, ...]]:
    """Shapes under diffusers' key names; other Wan formats are converted the way diffusers
    itself converts them when loading (original Wan, musubi/kohya)."""
    if info.key_format in ("diffusers", "unknown"):
        return dict(info.shapes)
    from diffusers import WanPipeline
    from safetensors.torch import load_file

    state_dict = WanPipeline.lora_state_dict(load_file(str(info.path)))
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def expert_prefix(info: LoraInfo, expert: str) -> str:
    """The key prefix of ``info``'s weights for ``expert`` (``"transformer"`` or ``"transformer_2"``).

    A LoRA trained on both experts of Wan2.2 A14B (``brandstudio lora train``) holds
    ``transformer.*`` keys for the high-noise expert and ``transformer_2.*`` keys for the
    low-noise one; a LoRA with ``transformer.*`` keys only goes into both experts as it is.

    Example:
        >>> info = LoraInfo(Path("x"), ("transformer_2.a.lora_A.weight",), {}, 4, None, {}, "diffusers")
        >>> expert_prefix(info, "transformer_2"), expert_prefix(info, "transformer")
        ('transformer_2.', 'transformer.')
    """
    if expert == "transformer_2" and any(k.startswith("transformer_2.") for k in info.keys):
        return "transformer_2."
    return "transformer."


def _norm_family(name: str) -> str:
    return name.strip().lower()


def _linear_dims(module: torch.nn.Module) -> tuple[int, int] | None:
    """(in_features, out_features) of a Linear, also once peft has wrapped it."""
    base = getattr(module, "base_layer", module)
    n_in, n_out = getattr(base, "in_features", None), getattr(base, "out_features", None)
    if isinstance(n_in, int) and isinstance(n_out, int):
        return n_in, n_out
    return None


def check_lora_fits(
    info: LoraInfo,
    transformer: torch.nn.Module,
    adapter: LoraAdapter,
    model_family: str,
    *,
    expert: str = "transformer",
) -> None:
    """Raise :class:`~brandstudio.errors.LoRAError` unless ``info`` fits ``transformer``.

    Checked, in order:

    1. the base model declared by the profile (``adapter.base_model``) and by the file's
       metadata (``brandstudio.base_model``) must both equal ``model_family``;
    2. the file must hold keys for the transformer (diffusers ignores all others silently);
    3. every target module must exist in ``transformer`` and be a Linear layer;
    4. every ``lora_A`` must be ``(rank, in_features)`` and every ``lora_B``
       ``(out_features, rank)``, with the same rank.

    Args:
        info: from :func:`inspect_lora`.
        transformer: the expert the LoRA will be loaded into (``pipe.transformer`` or
            ``pipe.transformer_2``).
        adapter: the profile's entry for this LoRA.
        model_family: the loaded model's family, e.g. ``"tiny-wan2.2"``.
        expert: which expert ``transformer`` is (``"transformer"`` or ``"transformer_2"``): a
            LoRA with weights per expert is checked with that expert's weights
            (:func:`expert_prefix`).

    Example:
        >>> check_lora_fits(info, pipe.transformer, adapter, "tiny-wan2.2")   # doctest: +SKIP
    """
    where = {"file": str(info.path), "field": "style.loras"}
    name = f"LoRA `{adapter.name}` ({info.path.name})"
    family = _norm_family(model_family)

    # 1. declared base model
    for source, declared in (("the profile", adapter.base_model), ("the file's metadata", info.base_model)):
        if declared and _norm_family(declared) != family:
            raise LoRAError(
                f"{name} was trained for `{declared}` (declared by {source}), "
                f"but the loaded model is `{model_family}`",
                fix=f"use a version of this LoRA trained for `{model_family}`, or switch [model] to a "
                f"`{declared}` checkpoint",
                **where,
            )

    # 2. keys for the transformer at all
    try:
        shapes = _diffusers_shapes(info)
    except Exception as e:  # diffusers' key converters fail with raw KeyError/ValueError
        raise LoRAError(
            f"{name} is in the {info.key_format} key format but could not be converted for "
            f"`{model_family}`: {type(e).__name__}: {e}",
            fix="use a Wan LoRA in the diffusers, original-Wan (diffusion_model.*) or musubi/kohya "
            "(lora_unet_*) key format",
            **where,
        ) from e
    prefix = expert_prefix(info, expert)
    lora_keys = {k: s for k, s in shapes.items() if k.startswith(prefix) and _LORA_SUFFIX.search(k)}
    if not lora_keys:
        sample = ", ".join(list(shapes)[:3]) or "(no tensors)"
        raise LoRAError(
            f"{name} holds no LoRA weights for the Wan transformer (keys such as `{sample}`)",
            fix="use a Wan LoRA in the diffusers, original-Wan (diffusion_model.*) or musubi/kohya "
            "(lora_unet_*) key format",
            **where,
        )

    # 3. + 4. modules and shapes
    modules = dict(transformer.named_modules())
    problems: list[str] = []
    pairs: dict[str, dict[str, tuple[int, ...]]] = {}
    for key, shape in lora_keys.items():
        module_name = _LORA_SUFFIX.sub("", key[len(prefix) :])
        pairs.setdefault(module_name, {})[_LORA_SUFFIX.search(key).group(1)] = shape
    for module_name, factors in sorted(pairs.items()):
        module = modules.get(module_name)
        if module is None:
            problems.append(f"`{module_name}`: no such module in the model")
            continue
        dims = _linear_dims(module)
        if dims is None:
            problems.append(f"`{module_name}`: is a {type(module).__name__}, not a Linear layer")
            continue
        n_in, n_out = dims
        a, b = factors.get("lora_A"), factors.get("lora_B")
        if a is None or b is None:
            problems.append(f"`{module_name}`: has only {'lora_A' if a else 'lora_B'}")
            continue
        if len(a) != 2 or len(b) != 2 or a[1] != n_in or b[0] != n_out or a[0] != b[1]:
            problems.append(
                f"`{module_name}`: lora_A {list(a)} / lora_B {list(b)} do not fit a Linear "
                f"{n_in} -> {n_out} (expected lora_A [r, {n_in}], lora_B [{n_out}, r])"
            )
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        declared = adapter.base_model or info.base_model or "unknown"
        raise LoRAError(
            f"{name} does not fit the loaded `{model_family}` model (declared base model: `{declared}`): "
            f"{len(problems)} of {len(pairs)} target modules do not match: {shown}",
            fix=f"use a LoRA trained for `{model_family}`; this one was probably trained for another base model",
            **where,
        )


#: what to do about a LoRA whose weights are NaN or infinite
NONFINITE_LORA_FIX = (
    "replace the LoRA with a sound copy (download or export it again); a LoRA whose training "
    "diverged (NaN) must be retrained or taken from an earlier checkpoint"
)


@ASSET_CHECKS.register("lora")
def check_lora_file(path: Path, *, profile: str | None = None) -> LoraInfo:
    """The check a profile's LoRA gets when it loads: its header (:func:`inspect_lora`), then
    every tensor finite (:func:`brandstudio.weights.check_finite`, paid once per file content).

    Raises:
        AssetError: the file is missing, a pickle, not safetensors, or holds NaN/±inf values.
    """
    info = inspect_lora(path, profile=profile)
    check_finite(info.path, what="LoRA", fix=NONFINITE_LORA_FIX, profile=profile)
    return info
