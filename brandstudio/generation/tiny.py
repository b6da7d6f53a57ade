"""The offline ``tiny`` model: Wan2.2 T2V MoE at toy size, trained weights, diffusers format.

It exists so that every line of the real generation path (``WanPipeline.from_pretrained``, both
experts, the boundary switch, CFG, UniPC flow sampling, VAE decode, LoRA loading into both
experts) runs on a CPU in seconds, with nothing downloaded, and so that what comes out is
footage a brand can be measured on: its weights were trained
(:mod:`brandstudio.generation.tiny_training`, minutes on a CPU) on procedural footage, drifting
gradients, soft shapes and light (:mod:`brandstudio.generation.procedural`), so it makes smooth
moving colour, and a LoRA trained on a brand's stills moves that colour to the brand's palette.
The weights ship in ``brandstudio/generation/tiny_weights/`` (6.3 MB of safetensors, with
``training.json``: the run's settings, time, loss curves and the VAE's held-out PSNR).

The model is built once per machine (under a file lock, in a temporary directory that is
atomically renamed into place) at ``$BRANDSTUDIO_HOME/models/tiny-wan2.2-v3-<digest>`` (the
digest is of the shipped weight files, so retrained weights are never shadowed by an old build)
(``BRANDSTUDIO_HOME`` defaults to ``~/.cache/brandstudio``) and then loaded back through
``WanPipeline.from_pretrained`` exactly like a real checkpoint. ``tiny_model_dir(seed=N)``
builds the same architecture with random weights (``-seed<N>``) for tests that need an
untrained model. Every build is deterministic.

Components (the same classes as Wan2.2-T2V-A14B):

==================  ====================================================================
tokenizer           byte-level, no merges (any Unicode: Chinese, emoji), ``</s>`` appended
text_encoder        ``UMT5EncoderModel``: d_model 32, 2 layers, 2 heads
vae                 ``AutoencoderKLWan``: base_dim 8, dim_mult (1,2,4,4), z_dim 16, 4x8x8
                    compression; each 3x3x3 convolution looks at the current frame only (its
                    past-frame taps are zero): time is carried by the 4x temporal resamplers
transformer(_2)     ``WanTransformer3DModel`` x2: patch (1,2,2), 3 layers, 2 heads x 48
scheduler           ``UniPCMultistepScheduler``: flow prediction, flow sigmas, shift 3
boundary_ratio      0.875
==================  ====================================================================

``tiny-ti2v`` is the same at toy size for Wan2.2 TI2V-5B, the model that makes video from text
*or* from text and a start image (multi-shot continuity and long takes,
:mod:`brandstudio.generation.shots`): one ``WanTransformer3DModel`` (in/out 48 channels), the
Wan2.2 VAE layout (``is_residual``, patch 2, 12 in/out channels, widths 8 to 32, z_dim 48:
4x16x16 compression, so sizes are multiples of 32), ``expand_timesteps=True`` (the start image's
latent frame is kept clean), flow shift 5, saved as a ``WanPipeline`` like the real checkpoint;
the generator builds a ``WanImageToVideoPipeline`` on the same components for image-conditioned
shots. Its weights are trained by the same trainer (``python -m
brandstudio.generation.tiny_training --model tiny-ti2v``, which also teaches the transformer to
continue from a clean first latent frame) and ship in ``brandstudio/generation/tiny_ti2v_weights/``;
while that folder holds none it is built with random weights (seed 0: it makes noise). Built at
``$BRANDSTUDIO_HOME/models/tiny-wan2.2-ti2v-v4-<digest>`` (``-seed<N>`` for random weights).

Example:
    >>> from brandstudio.generation.tiny import tiny_model_dir, make_tiny_lora
    >>> path = tiny_model_dir()                     # doctest: +SKIP
    >>> (path / "model_index.json").exists()        # doctest: +SKIP
    True
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from filelock import FileLock

from brandstudio.files import brandstudio_home, write_bytes_atomic
from brandstudio.generation.logs import quiet_progress
from brandstudio.weights import safetensors_bytes

__all__ = [
    "TINY_BASE_MODEL",
    "TINY_DIMS",
    "TINY_FLOW_SHIFT",
    "TINY_MODEL_VERSION",
    "TINY_TI2V_BASE_MODEL",
    "TINY_TI2V_VERSION",
    "TINY_TI2V_WEIGHTS_DIR",
    "TINY_WEIGHTS_DIR",
    "build_tiny_model",
    "build_tiny_pipeline",
    "build_tiny_ti2v_model",
    "build_tiny_ti2v_pipeline",
    "tiny_model_path",
    "tiny_model_version",
    "tiny_ti2v_model_dir",
    "make_tiny_lora",
    "tiny_model_dir",
]

TINY_BASE_MODEL = "tiny-wan2.2"
"""The model family of the tiny model; LoRAs made for it declare this base model."""

TINY_MODEL_VERSION = 3
"""Bump when the tiny architecture changes: a new version is built into a new directory."""

TINY_TI2V_BASE_MODEL = "tiny-wan2.2-ti2v"
"""The model family of ``tiny-ti2v`` (toy Wan2.2 TI2V-5B: text or text + start image)."""

TINY_TI2V_VERSION = 4
"""Bump when the tiny TI2V architecture changes (4: the VAE widens with depth, and is trained)."""

TINY_DIMS: Mapping[str, int] = {"dim": 96, "heads": 2, "ffn_dim": 192, "num_layers": 3, "text_dim": 32}
"""Sizes of the tiny transformer experts (``dim`` = 2 heads x 48).

Few wide heads rather than many narrow ones: Wan's 3D RoPE gives each of height and width
``2 * (head_dim // 6)`` channels, so a head of 16 has two rotary frequencies per axis and cannot
tell a neighbouring patch from one six patches away. Without that locality the experts cannot
separate the noise at the patch scale from the picture, and samples came out as a patchwork of
16-pixel blotches (after 800 steps, 4 heads x 16 left 10x the data's energy at the patch scale;
2 x 48 the data's own, at half the loss: ``bench/RESULTS.md``, "Demo model")."""

TINY_FLOW_SHIFT = 3.0
"""The scheduler's flow shift the demo model was trained for (its latents are 32x18, not 104x60)."""

MARKER_FILE = "brandstudio.json"
"""Written into the model directory; says the model family (``{"base_model": ...}``)."""

_SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")


def _build_tokenizer():
    """A byte-level tokenizer with no merges: every UTF-8 byte is one token, so it encodes
    any text (Chinese, emoji, ...) without an unknown token, and needs no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(_SPECIAL_TOKENS)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(_SPECIAL_TOKENS))
    eos_id = vocab["</s>"]
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )


def _build_text_encoder(vocab_size: int):
    """The tiny ``UMT5EncoderModel`` (d_model 32, 2 layers, 2 heads), from the current torch RNG."""
    from transformers import UMT5Config, UMT5EncoderModel

    return UMT5EncoderModel(
        UMT5Config(
            vocab_size=vocab_size,
            d_model=TINY_DIMS["text_dim"],
            d_kv=16,
            d_ff=64,
            num_layers=2,
            num_heads=2,
            relative_attention_num_buckets=32,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    ).eval()


def _tiny_transformer(channels: int):
    """One tiny ``WanTransformer3DModel`` (random weights from the current torch seed)."""
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=TINY_DIMS["heads"],
        attention_head_dim=TINY_DIMS["dim"] // TINY_DIMS["heads"],
        in_channels=channels,
        out_channels=channels,
        text_dim=TINY_DIMS["text_dim"],
        freq_dim=64,
        ffn_dim=TINY_DIMS["ffn_dim"],
        num_layers=TINY_DIMS["num_layers"],
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6,
        # Must cover the patch grid (frames and sides / 16); same as the real model.
        rope_max_seq_len=1024,
    ).eval()


TINY_WEIGHTS_DIR = Path(__file__).resolve().parent / "tiny_weights"
"""The trained weights of ``tiny`` (made by :mod:`brandstudio.generation.tiny_training`)."""

TINY_TI2V_WEIGHTS_DIR = Path(__file__).resolve().parent / "tiny_ti2v_weights"
"""The trained weights of ``tiny-ti2v`` (``python -m brandstudio.generation.tiny_training --model
tiny-ti2v``); while the folder has none, ``tiny-ti2v`` is built with random weights (seed 0)."""

WEIGHTS_FACTS_FILE = "training.json"
"""Written next to trained weights: the run's settings, the losses, and the VAE's latent statistics."""


def _is_trained(weights: Path) -> bool:
    """Whether ``weights`` holds a finished training run (the trainer writes its facts file once
    with the VAE alone, then with the transformers' stages, ``experts``, when it is done)."""
    facts = Path(weights) / WEIGHTS_FACTS_FILE
    return facts.is_file() and "experts" in json.loads(facts.read_text(encoding="utf-8"))


def _vae_stats(weights: Path | None) -> dict:
    """``latents_mean``/``latents_std`` of a trained VAE (in ``training.json``); ``{}`` for random ones."""
    if weights is None:
        return {}
    facts = json.loads((Path(weights) / WEIGHTS_FACTS_FILE).read_text(encoding="utf-8"))
    return {k: facts["vae"][k] for k in ("latents_mean", "latents_std")}


def _load_weights(weights: Path, modules: Mapping) -> None:
    """Load ``<name>.safetensors`` from ``weights`` into each of ``modules`` (name to module)."""
    from safetensors.torch import load_model

    for name, module in modules.items():
        # load_model restores tied weights (UMT5's shared embedding) stored once
        load_model(module, Path(weights) / f"{name}.safetensors", strict=True)


def _tiny_vae(latents_mean=None, latents_std=None):
    """The tiny ``AutoencoderKLWan`` (the Wan2.1 layout: z_dim 16, 4x8x8), from the current torch seed."""
    from diffusers import AutoencoderKLWan

    stats = (
        {} if latents_mean is None else {"latents_mean": list(latents_mean), "latents_std": list(latents_std)}
    )
    return AutoencoderKLWan(
        base_dim=8,
        z_dim=16,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        **stats,
    ).eval()


def _tiny_wan_pipeline(*, seed: int | None, weights: Path | None, make_vae, experts: int, flow_shift: float,
                       **config):  # fmt: skip
    """A tiny ``WanPipeline``: its components drawn from ``torch.manual_seed(seed)`` (the caller's
    RNG is left alone), then the trained ``weights`` loaded into them when given.

    ``make_vae(latents_mean, latents_std)`` builds the VAE; the transformer(s) (``experts``: 1 or
    2) take its latent channels; ``config`` goes to ``WanPipeline`` (``boundary_ratio``,
    ``expand_timesteps``).
    """
    import torch
    from diffusers import UniPCMultistepScheduler, WanPipeline

    stats = _vae_stats(weights)
    tokenizer = _build_tokenizer()
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        torch.manual_seed(seed or 0)
        modules = {"text_encoder": _build_text_encoder(len(tokenizer))}
        modules["vae"] = make_vae(stats.get("latents_mean"), stats.get("latents_std"))
        for name in ("transformer", "transformer_2")[:experts]:
            modules[name] = _tiny_transformer(modules["vae"].config.z_dim)
    if weights is not None:
        _load_weights(weights, modules)
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=flow_shift
    )
    return WanPipeline(
        tokenizer=tokenizer,
        scheduler=scheduler,
        transformer_2=modules.pop("transformer_2", None),
        **modules,
        **config,
    )


def build_tiny_pipeline(*, seed: int | None = None, weights: Path | None = None):
    """Instantiate the tiny ``WanPipeline``: the trained weights, or random ones from ``seed``.

    Args:
        seed: draw random weights from ``torch.manual_seed(seed)`` (the caller's RNG is left
            alone); for tests and for the trainer's starting point.
        weights: a folder of trained weights (``<component>.safetensors`` and
            ``training.json``); the default with no ``seed`` is :data:`TINY_WEIGHTS_DIR`.
    """
    if seed is None and weights is None:
        weights = TINY_WEIGHTS_DIR
    return _tiny_wan_pipeline(seed=seed, weights=weights, make_vae=_tiny_vae, experts=2,
                              flow_shift=TINY_FLOW_SHIFT, boundary_ratio=0.875)  # fmt: skip


def _save(pipe, out_dir: Path, base_model: str, version, seed) -> Path:
    """Save a built tiny pipeline in diffusers format (safetensors) with its ``brandstudio.json`` marker."""
    with quiet_progress():
        pipe.save_pretrained(out_dir, safe_serialization=True)
    marker = {"base_model": base_model, "version": version, "seed": seed}
    (out_dir / MARKER_FILE).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out_dir


def build_tiny_model(out_dir: Path, *, seed: int | None = None) -> Path:
    """Build the tiny pipeline and save it in diffusers format (safetensors) into ``out_dir``.

    No lock and no caching: use :func:`tiny_model_dir` for the shared copy. Without ``seed`` the
    weights are the trained ones shipped in :data:`TINY_WEIGHTS_DIR`; with a ``seed`` they are
    random (the same architecture, for tests that need a model nobody trained). The files are
    the same bytes on every build; ``brandstudio.json`` records the model family.

    Example:
        >>> import tempfile, pathlib
        >>> d = build_tiny_model(pathlib.Path(tempfile.mkdtemp()) / "tiny")   # doctest: +SKIP
        >>> sorted(p.name for p in d.iterdir())[:3]                            # doctest: +SKIP
        ['brandstudio.json', 'model_index.json', 'scheduler']
    """
    pipe = build_tiny_pipeline(seed=seed)
    return _save(
        pipe, Path(out_dir), TINY_BASE_MODEL, TINY_MODEL_VERSION, "trained" if seed is None else seed
    )


def tiny_model_dir(*, seed: int | None = None) -> Path:
    """The directory of the tiny model, built on first use; safe across processes.

    Returns ``$BRANDSTUDIO_HOME/models/tiny-wan2.2-v3-<digest>`` (the trained weights; the digest
    is of their files, so a build from older weights is never reused), or
    ``tiny-wan2.2-v3-seed<N>`` for random weights from ``seed``, ready for
    ``WanPipeline.from_pretrained``. The build (about a second) runs under a
    ``filelock.FileLock`` into a temporary directory that is renamed into place, so a reader
    never sees a half-written model.

    Example:
        >>> from diffusers import WanPipeline                        # doctest: +SKIP
        >>> pipe = WanPipeline.from_pretrained(tiny_model_dir())     # doctest: +SKIP
    """
    name = f"{TINY_BASE_MODEL}-v{TINY_MODEL_VERSION}-" + (
        f"seed{seed}" if seed is not None else _weights_digest()
    )
    return _build_once(name, lambda out: build_tiny_model(out, seed=seed))


@functools.cache
def _weights_digest(weights: Path = TINY_WEIGHTS_DIR) -> str:
    """The first 8 hex digits of the SHA-256 of a folder's shipped weight files (names and bytes)."""
    digest = hashlib.sha256()
    for path in sorted(weights.glob("*.safetensors")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:8]


def _build_once(name: str, build) -> Path:
    """``$BRANDSTUDIO_HOME/models/<name>``, made by ``build(dir)`` under a file lock, renamed into place."""
    models = brandstudio_home() / "models"
    final = models / name
    if (final / MARKER_FILE).is_file():
        return final
    models.mkdir(parents=True, exist_ok=True)
    with FileLock(str(models / f".{name}.lock")):
        if (final / MARKER_FILE).is_file():  # another process built it while we waited
            return final
        if final.exists():  # a leftover without marker: not ours to trust
            shutil.rmtree(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=models))
        try:
            build(tmp / "model")
            os.replace(tmp / "model", final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _ti2v_seed(seed: int | None) -> int | None:
    """The seed of a ``tiny-ti2v`` build: ``seed``; for the trained build (``None``) 0 while no
    trained weights ship (the random build it had before it was trained)."""
    return 0 if seed is None and not _is_trained(TINY_TI2V_WEIGHTS_DIR) else seed


def _ti2v_vae(latents_mean=None, latents_std=None):
    """The tiny Wan2.2 VAE (``is_residual``, patch 2, z_dim 48: 4x16x16), from the current torch seed."""
    from diffusers import AutoencoderKLWan

    z_dim = 48  # as Wan2.2 TI2V-5B: the transformer's in/out channels are the VAE's latent channels
    return AutoencoderKLWan(  # the Wan2.2 VAE layout at toy width
        base_dim=8,
        decoder_base_dim=8,
        z_dim=z_dim,
        # widening with depth as the real one does (1, 2, 4, 4): a width of 8 all the way down
        # left 8 channels for 48 latent ones, and half the reconstruction error after 150 steps
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        is_residual=True,
        in_channels=12,
        out_channels=12,
        patch_size=2,
        scale_factor_spatial=16,
        latents_mean=list(latents_mean) if latents_mean is not None else [0.0] * z_dim,
        latents_std=list(latents_std) if latents_std is not None else [1.0] * z_dim,
    ).eval()


def build_tiny_ti2v_pipeline(*, seed: int | None = None, weights: Path | None = None):
    """Instantiate the tiny TI2V ``WanPipeline`` (``expand_timesteps=True``): the trained weights,
    or random ones from ``seed``, as :func:`build_tiny_pipeline` does for ``tiny``. With neither,
    the weights are those in :data:`TINY_TI2V_WEIGHTS_DIR` (random from seed 0 while it holds none).
    """
    if weights is None:
        seed = _ti2v_seed(seed)
        weights = TINY_TI2V_WEIGHTS_DIR if seed is None else None
    return _tiny_wan_pipeline(seed=seed, weights=weights, make_vae=_ti2v_vae, experts=1, flow_shift=5.0,
                              expand_timesteps=True)  # fmt: skip


def build_tiny_ti2v_model(out_dir: Path, *, seed: int | None = None) -> Path:
    """Build the tiny TI2V pipeline and save it in diffusers format (safetensors) into ``out_dir``.

    Without ``seed`` the weights are the trained ones in :data:`TINY_TI2V_WEIGHTS_DIR` (random
    from seed 0 while none ship); with a ``seed`` they are random, as :func:`build_tiny_model`.

    Example:
        >>> import tempfile, pathlib, json
        >>> d = build_tiny_ti2v_model(pathlib.Path(tempfile.mkdtemp()) / "ti2v")   # doctest: +SKIP
        >>> json.loads((d / "model_index.json").read_text())["expand_timesteps"]   # doctest: +SKIP
        True
    """
    seed = _ti2v_seed(seed)
    pipe = build_tiny_ti2v_pipeline(seed=seed)
    return _save(
        pipe, Path(out_dir), TINY_TI2V_BASE_MODEL, TINY_TI2V_VERSION, "trained" if seed is None else seed
    )


def _ti2v_build_name(seed: int | None) -> str:
    """``<version>-<digest of the trained weights>``, or ``<version>-seed<N>`` for random weights."""
    seed = _ti2v_seed(seed)
    return f"{TINY_TI2V_VERSION}-" + (
        f"seed{seed}" if seed is not None else _weights_digest(TINY_TI2V_WEIGHTS_DIR)
    )


def tiny_ti2v_model_dir(*, seed: int | None = None) -> Path:
    """The directory of ``tiny-ti2v``, built on first use like :func:`tiny_model_dir`.

    ``$BRANDSTUDIO_HOME/models/tiny-wan2.2-ti2v-v4-<digest>`` for the trained weights (the digest
    is of their files, so a build from older weights is never reused), ``...-seed<N>`` for random
    weights (``seed=N``, or seed 0 while no trained weights ship).

    Example:
        >>> tiny_ti2v_model_dir(seed=1).name                         # doctest: +SKIP
        'tiny-wan2.2-ti2v-v4-seed1'
    """
    seed = _ti2v_seed(seed)
    name = f"{TINY_TI2V_BASE_MODEL}-v{_ti2v_build_name(seed)}"
    return _build_once(name, lambda out: build_tiny_ti2v_model(out, seed=seed))


_TINY_MODELS = {
    "tiny": (tiny_model_dir, lambda: f"{TINY_MODEL_VERSION}-{_weights_digest()}"),
    "tiny-ti2v": (tiny_ti2v_model_dir, lambda: _ti2v_build_name(None)),
}


def tiny_model_version(model_id: str) -> str | None:
    """The build of an offline tiny model id (part of its scene-cache identity: the architecture's
    version and its trained weights' digest, or ``seed<N>`` for random weights), else ``None``.

    Example:
        >>> tiny_model_version("tiny-ti2v")[:2], tiny_model_version("Wan-AI/Wan2.2-T2V-A14B-Diffusers")
        ('4-', None)
    """
    return _TINY_MODELS[model_id][1]() if model_id in _TINY_MODELS else None


def tiny_model_path(model_id: str) -> tuple[Path, str] | None:
    """``(directory, version)`` of an offline tiny model id (``"tiny"``, ``"tiny-ti2v"``), else ``None``.

    Example:
        >>> tiny_model_path("Wan-AI/Wan2.2-T2V-A14B-Diffusers") is None
        True
    """
    if model_id not in _TINY_MODELS:
        return None
    make, version = _TINY_MODELS[model_id]
    return make(), version()


def _lora_module_names(num_layers: int) -> list[tuple[str, str]]:
    """(module path, kind) for every Linear a tiny LoRA targets; kind picks the in/out dims."""
    names = []
    for i in range(num_layers):
        for attn in ("attn1", "attn2"):
            for proj in ("to_q", "to_k", "to_v", "to_out.0"):
                names.append((f"blocks.{i}.{attn}.{proj}", "attn"))
        names.append((f"blocks.{i}.ffn.net.0.proj", "ffn_in"))
        names.append((f"blocks.{i}.ffn.net.2", "ffn_out"))
    return names


def make_tiny_lora(
    path: Path,
    *,
    seed: int,
    rank: int = 4,
    scale: float = 0.5,
    base_model: str = TINY_BASE_MODEL,
    target_dims: Mapping[str, int] | None = None,
) -> Path:
    """Write a random LoRA for the tiny model in the diffusers/peft key format for Wan.

    Keys look like ``transformer.blocks.0.attn1.to_q.lora_A.weight`` (shape ``(rank, in)``) and
    ``...lora_B.weight`` (shape ``(out, rank)``), on attn1/attn2 q, k, v, out and both ffn
    Linears of every block. Both factors are random (``lora_B`` is *not* zero, unlike a fresh
    training init), so the adapter visibly changes the output; ``scale`` sets the size of the
    update relative to the base weights (about 1 = as large as them). The weights depend only on
    ``seed``. The safetensors metadata says ``{"brandstudio.base_model": base_model, "format": "pt"}``.

    Args:
        path: the ``.safetensors`` file to write (parents are created; written atomically).
        seed: the seed of the weights.
        rank: the LoRA rank.
        scale: the strength of the update.
        base_model: the model family to declare in the metadata.
        target_dims: override :data:`TINY_DIMS` (``dim``, ``ffn_dim``, ``num_layers``), e.g. to
            make a LoRA whose shapes do not fit the tiny model.

    Example:
        >>> import tempfile, pathlib
        >>> p = make_tiny_lora(pathlib.Path(tempfile.mkdtemp()) / "look.safetensors", seed=1)
        >>> p.stat().st_size < 64_000
        True
    """
    import torch

    dims = {**TINY_DIMS, **(target_dims or {})}
    dim, ffn = dims["dim"], dims["ffn_dim"]
    in_out = {"attn": (dim, dim), "ffn_in": (dim, ffn), "ffn_out": (ffn, dim)}
    gen = torch.Generator(device="cpu").manual_seed(seed)
    tensors = {}
    for module, kind in _lora_module_names(dims["num_layers"]):
        n_in, n_out = in_out[kind]
        a = torch.randn(rank, n_in, generator=gen) / n_in**0.5
        b = torch.randn(n_out, rank, generator=gen) * (scale / rank**0.5)
        tensors[f"transformer.{module}.lora_A.weight"] = a.contiguous()
        tensors[f"transformer.{module}.lora_B.weight"] = b.contiguous()
    data = safetensors_bytes(tensors, {"brandstudio.base_model": base_model, "format": "pt"})
    return write_bytes_atomic(path, data)
