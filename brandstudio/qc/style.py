"""The CLIP checks of a clip: **style** (its frames against the brand's reference stills) and
**prompt** adherence (its frames against the final prompt).

**Which model.** ``[qc] clip_model`` in ``brand.toml`` (a folder inside the profile, or a hub
id such as ``openai/clip-vit-base-patch32``) wins; unset, ``$BRANDSTUDIO_CLIP_MODEL`` (a folder
anywhere on the machine, or a hub id) is the machine's default. The profile wins because its
``style_*`` / ``prompt_*`` thresholds are calibrated for its model: a machine default must not
silently change what a brand's numbers mean. With neither, both checks are skipped with
:data:`NO_CLIP_MODEL`, never given a made-up score.

**Loading** (:func:`load_clip_model`): ``transformers.CLIPModel.from_pretrained`` with
``local_files_only=True`` (nothing is downloaded at run time: a hub id must already be in the
Hugging Face cache, ``hf download openai/clip-vit-base-patch32`` puts it there) and
``use_safetensors=True`` (pickled weights are refused, as everywhere in brandstudio). A model
whose weights do not all load (a vision-only checkpoint, say) is refused rather than scored
with randomly initialised layers. It runs in float32 on the CPU (QC runs while the generator
may still hold the GPU; 8 frames take well under a second with ViT-B/32) and is kept in the
process (an LRU of two models), so a campaign loads it once; the reference stills' embeddings
are kept per model and file SHA-256, so each still is decoded and embedded once.

**Measuring** (:func:`clip_checks`), on the :data:`~brandstudio.qc.sampler.CLIP_FRAMES`
evenly spaced frames the :class:`~brandstudio.qc.QCCollector` kept. Each frame and still is
prepared as CLIP's own image processor does: the shorter side scaled to the model's input size
(bicubic), a centre crop, OpenAI's mean and standard deviation.

* ``style``: per frame, the cosine similarity of its CLIP image embedding to the **closest**
  reference still (a brand's stills differ from each other, a product shot and a café
  interior, and a frame need only look like one of them); the score is the mean over the
  frames. The stills are the images of ``[style] references`` (PNG, JPEG, WebP, TIFF; the
  first :data:`MAX_REFERENCES` by name), read within the profile's image limits.
* ``prompt``: CLIPScore, ``100 × max(cos, 0)`` of a frame's image embedding and the prompt's
  text embedding (torchmetrics' scale; Hessel et al. 2021 use 2.5 × cos), mean over the frames.
  A multi-shot clip passes each shot's prompt and a frame is scored against the one it is
  closest to. CLIP reads at most 77 tokens: a longer prompt is cut there (the explanation
  says so), since its text tower has no positions past them.

Higher is better for both; ``[qc]`` ``style_warn`` / ``style_fail`` and ``prompt_warn`` /
``prompt_fail`` say where they warn and fail (:class:`~brandstudio.profile.schema.QCSection`
gives the defaults and what they mean for ViT-B/32). A failing style or prompt check makes the
report's verdict FAIL, like the palette; it does not stop the clip from being delivered.

Example:
    >>> from brandstudio.profile import load_profile
    >>> profile = load_profile("brand_profiles/aurora-coffee")    # doctest: +SKIP
    >>> clip_model_source(profile) is None                         # doctest: +SKIP
    True
    >>> clip_checks([], profile, "a cup").checks[0].explanation    # doctest: +SKIP
    'skipped: no CLIP model (set [qc] clip_model in brand.toml or $BRANDSTUDIO_CLIP_MODEL)'
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from brandstudio.errors import AssetError, QCError
from brandstudio.files import MAX_IMAGE_BYTES, read_user_bytes
from brandstudio.generation.logs import quiet_progress
from brandstudio.profile import BrandProfile
from brandstudio.profile.assets import read_image
from brandstudio.style.lut_profile import IMAGE_SUFFIXES

from .results import Check, grade_min, skipped
from .sampler import clip_size

__all__ = [
    "CLIP_MODEL_ENV",
    "MAX_REFERENCES",
    "NO_CLIP_MODEL",
    "ClipChecks",
    "ClipModelSource",
    "ClipScorer",
    "check",
    "clip_checks",
    "clip_model_source",
    "load_clip_model",
    "reference_stills",
]

#: the environment variable naming the machine's default CLIP model (a folder or a hub id)
CLIP_MODEL_ENV = "BRANDSTUDIO_CLIP_MODEL"
#: why the style and prompt checks are skipped when no CLIP model is configured
NO_CLIP_MODEL = f"skipped: no CLIP model (set [qc] clip_model in brand.toml or ${CLIP_MODEL_ENV})"
#: reference stills compared at most (the first ones by file name)
MAX_REFERENCES = 64
#: OpenAI CLIP's input normalisation (every CLIPModel checkpoint, OpenAI's and LAION's, uses it)
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)

_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
_PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.ckpt", "model.pt", "model.pth")
_GET = "download it once with `hf download openai/clip-vit-base-patch32` (brandstudio never downloads at run time)"
_BATCH = 16


@dataclass(frozen=True)
class ClipModelSource:
    """Where the CLIP model comes from: ``value`` as written, ``origin`` (``"[qc] clip_model"``
    or ``"$BRANDSTUDIO_CLIP_MODEL"``), ``field`` (how errors name it), ``location`` (an absolute
    folder, or the hub id) and whether that is a folder (``local``)."""

    value: str
    origin: str
    field: str
    location: str
    local: bool

    def error(self, message: str, fix: str, profile: str | None = None) -> QCError:
        return QCError(f"the CLIP model {self.value!r} ({self.origin}) {message}", profile=profile,
                       field=self.field, value=self.value, fix=fix)  # fmt: skip


def clip_model_source(profile: BrandProfile) -> ClipModelSource | None:
    """The CLIP model the profile's QC uses: ``[qc] clip_model`` (a folder inside the profile,
    else a hub id), else ``$BRANDSTUDIO_CLIP_MODEL`` (a folder, else a hub id), else None.

    Raises :class:`~brandstudio.errors.QCError` for a value that is neither an existing folder
    (inside the profile, for brand.toml) nor a hub id."""
    value = profile.spec.qc.clip_model
    if value:
        root = profile.root.resolve()
        candidate = root / value
        if os.path.lexists(candidate):
            try:
                path = candidate.resolve()
            except (RuntimeError, OSError):  # a symlink loop
                path = candidate
            src = ClipModelSource(value, "[qc] clip_model", "qc.clip_model", str(path), True)
            if not path.is_relative_to(root):
                raise src.error("leads outside the profile directory", profile=profile.id,
                                fix=f"copy the model folder into {root}, or set ${CLIP_MODEL_ENV} to it instead")  # fmt: skip
            if not path.is_dir():
                raise src.error("is not a folder", profile=profile.id,
                                fix="point `clip_model` at a folder holding config.json, model.safetensors and the tokenizer")  # fmt: skip
            return src
        src = ClipModelSource(value, "[qc] clip_model", "qc.clip_model", value, False)
        if not _HUB_ID.fullmatch(value):
            raise src.error(f"is no folder in the profile ({candidate} does not exist) and no hub id",
                            profile=profile.id, fix="create that folder, or name a hub id such as "
                            "'openai/clip-vit-base-patch32'")  # fmt: skip
        return src
    value = os.environ.get(CLIP_MODEL_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if path.is_dir():
        return ClipModelSource(value, f"${CLIP_MODEL_ENV}", CLIP_MODEL_ENV, str(path.resolve()), True)
    src = ClipModelSource(value, f"${CLIP_MODEL_ENV}", CLIP_MODEL_ENV, value, False)
    if path.exists() or path.is_absolute() or value.startswith((".", "~")) or not _HUB_ID.fullmatch(value):
        why = "is not a folder" if path.exists() else "does not exist"
        raise src.error(f"{why}, and is no hub id", fix=f"point {CLIP_MODEL_ENV} at a CLIP model folder "
                        "(config.json, model.safetensors, tokenizer), or at a hub id in the Hugging Face cache")  # fmt: skip
    return src


# -- the model -----------------------------------------------------------------------------


class ClipScorer:
    """A loaded CLIP model, its tokenizer and its input size: embeds frames and prompts.

    Embeddings are L2-normalised float64 rows, so a dot product is a cosine similarity."""

    def __init__(self, name: str, model, tokenizer) -> None:
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.image_size = int(model.config.vision_config.image_size)
        limit = getattr(tokenizer, "model_max_length", None) or math.inf
        self.max_tokens = int(min(model.config.text_config.max_position_embeddings, limit))
        self.lock = threading.Lock()  # one embedding at a time per model (campaign threads share it)

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """``image`` (uint8 ``(H, W, 3)``) as CLIP's image processor makes it: the shorter side
        to :attr:`image_size` (bicubic), a centre crop, OpenAI's mean and std; ``(3, S, S)``."""
        size = self.image_size
        img = Image.fromarray(np.ascontiguousarray(image[..., :3], dtype=np.uint8))
        w, h = img.size
        s = size / min(w, h)
        img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.Resampling.BICUBIC)
        left, top = (img.width - size) // 2, (img.height - size) // 2
        x = np.asarray(img.crop((left, top, left + size, top + size)), np.float32) / 255.0
        return ((x - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1)

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """The normalised image embeddings ``(n, d)`` of ``images`` (uint8 RGB)."""
        import torch  # torch: heavy, only with a CLIP model configured

        rows = []
        with self.lock, torch.inference_mode():
            for b in range(0, len(images), _BATCH):
                x = torch.from_numpy(np.stack([self.prepare(im) for im in images[b : b + _BATCH]]))
                pooled = self.model.vision_model(pixel_values=x).pooler_output
                rows.append(self.model.visual_projection(pooled).double())
        return self._normalised(torch.cat(rows).numpy() if rows else np.zeros((0, 1)))

    def embed_texts(self, texts: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        """The normalised text embeddings ``(n, d)`` of ``texts``, each cut to :attr:`max_tokens`
        tokens, and whether each was cut."""
        import torch  # torch: heavy, only with a CLIP model configured

        tok = self.tokenizer
        with self.lock, torch.inference_mode():
            cut = [len(tok(t, truncation=False, verbose=False)["input_ids"]) > self.max_tokens for t in texts]
            enc = tok(
                list(texts), padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
            )
            pooled = self.model.text_model(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
            ).pooler_output
            emb = self.model.text_projection(pooled).double().numpy()
        return self._normalised(emb), cut

    def _normalised(self, emb: np.ndarray) -> np.ndarray:
        if not np.isfinite(emb).all():
            raise QCError(
                f"the CLIP model {self.name!r} gives non-finite embeddings (NaN or inf): its weights are damaged",
                field="qc.clip_model", value=self.name, fix="download or convert the model again",
            )  # fmt: skip
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


class _LoadFailure(Exception):
    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.message, self.fix = message, fix


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' loading notices and bars off (brandstudio reports what went wrong itself)."""
    from transformers.utils import logging as tlog  # transformers: heavy, only with a CLIP model

    old = tlog.get_verbosity()
    tlog.set_verbosity_error()
    try:
        with quiet_progress():
            yield
    finally:
        tlog.set_verbosity(old)


def _first_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def _check_folder(folder: Path) -> None:
    """A CLIP folder holds config.json and safetensors weights (pickles refused before loading)."""
    if not (folder / "config.json").is_file():
        raise _LoadFailure("holds no config.json: it is not a transformers model folder",
                           f"point it at a CLIP model folder (save_pretrained's output), or {_GET}")  # fmt: skip
    if not any(folder.glob("*.safetensors")):
        pickles = [name for name in _PICKLES if (folder / name).exists()]
        if pickles:
            raise _LoadFailure(
                f"has only pickle weights ({pickles[0]}); brandstudio loads CLIP weights from safetensors only, "
                "because a pickle can run arbitrary code",
                "convert it once (CLIPModel.from_pretrained(folder).save_pretrained(folder, safe_serialization=True) "
                "on a model you trust), or use a checkpoint that ships model.safetensors",
            )
        raise _LoadFailure(
            "holds no weights (no .safetensors file)", f"save the model there again, or {_GET}"
        )


@functools.lru_cache(maxsize=2)
def _load(location: str, local: bool) -> ClipScorer:
    """The CLIP model at ``location`` (a folder, or a cached hub id), loaded once per process."""
    import torch  # torch, transformers: heavy, only with a CLIP model configured
    from transformers import AutoConfig, AutoTokenizer, CLIPModel

    if local:
        _check_folder(Path(location))
    where = "" if local else " in the Hugging Face cache"
    with _quiet_transformers():
        try:
            config = AutoConfig.from_pretrained(location, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - transformers raises OSError, ValueError, KeyError, ...
            if local:
                raise _LoadFailure(f"has a config.json transformers cannot read ({_first_line(exc)})",
                                   "save the model there again with save_pretrained") from None  # fmt: skip
            raise _LoadFailure(f"is neither a model folder nor in the Hugging Face cache ({_hf_cache()}), and "
                               "brandstudio does not download",
                               f"download it once with `hf download {location}` (brandstudio never downloads at "
                               "run time), or point it at a local folder") from None  # fmt: skip
        if getattr(config, "model_type", None) != "clip":
            raise _LoadFailure(
                f"is a `{getattr(config, 'model_type', '?')}` model, not a CLIP model (model_type `clip`)",
                "name a CLIP checkpoint such as openai/clip-vit-base-patch32",
            )
        try:
            model, info = CLIPModel.from_pretrained(location, config=config, local_files_only=True,
                                                    use_safetensors=True, output_loading_info=True)  # fmt: skip
        except Exception as exc:  # noqa: BLE001
            raise _LoadFailure(f"could not be loaded{where} from safetensors weights ({_first_line(exc)})",
                               (f"download it again with `hf download {location}`" if not local else
                                "save it again with save_pretrained(safe_serialization=True)")
                               + " (brandstudio loads CLIP weights from safetensors only)") from None  # fmt: skip
        missing = list(info.get("missing_keys") or [])
        if missing:  # those layers would be random: a made-up score
            raise _LoadFailure(
                f"has incomplete weights: {len(missing)} tensors are missing (e.g. {missing[0]}), so its "
                "scores would come from random layers",
                "use a whole CLIP checkpoint (both the image and the text tower)",
            )
        try:
            tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=True)
        except Exception as exc:  # noqa: BLE001
            raise _LoadFailure(f"has no usable tokenizer{where} ({_first_line(exc)})",
                               "use a CLIP folder with its tokenizer files (tokenizer.json, or vocab.json and merges.txt)") from None  # fmt: skip
    _check_tokenizer(tokenizer, int(config.text_config.vocab_size))
    model = model.float().eval().requires_grad_(False).to(torch.device("cpu"))
    return ClipScorer(location, model, tokenizer)


def _check_tokenizer(tokenizer, vocab_size: int) -> None:
    """The tokenizer fits the model: no more tokens than its embedding table, and plain English
    without unknown tokens (a folder without tokenizer files gets an empty one from transformers,
    which would turn every prompt into unknown tokens and score that)."""
    size = len(tokenizer)
    probe = tokenizer("a photo of a cup of coffee", add_special_tokens=False)["input_ids"]
    unk = getattr(tokenizer, "unk_token_id", None)
    unreadable = not probe or (unk is not None and unk in probe)
    if size < 256 or size > vocab_size or unreadable:
        why = (
            "it reads plain English as unknown tokens"
            if unreadable
            else f"{size} tokens for a model of {vocab_size}"
        )
        raise _LoadFailure(
            f"has no usable tokenizer ({why}): its tokenizer files are missing or belong to another model",
            "use a CLIP folder with its own tokenizer files (tokenizer.json, or vocab.json and merges.txt)",
        )


def _hf_cache() -> str:
    return os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub"
    )


def load_clip_model(source: ClipModelSource, *, profile: str | None = None) -> ClipScorer:
    """The CLIP model ``source`` names, loaded (once per process) or refused with a
    :class:`~brandstudio.errors.QCError` naming ``[qc] clip_model`` or ``$BRANDSTUDIO_CLIP_MODEL``,
    the value and the fix: a folder without config.json or safetensors weights, a hub id not in
    the cache, another kind of model, missing weights, no tokenizer."""
    try:
        return _load(source.location, source.local)
    except _LoadFailure as exc:
        raise source.error(exc.message, exc.fix, profile=profile) from None


# -- the reference stills ------------------------------------------------------------------


def reference_stills(profile: BrandProfile) -> tuple[list[Path], int] | None:
    """The stills of ``[style] references`` (sorted by name; at most :data:`MAX_REFERENCES`) and
    how many there are; None when the profile names no references folder.

    Raises :class:`~brandstudio.errors.AssetError` for a folder that is missing, not a folder
    or leads outside the profile, and for a still that leads outside it."""
    rel = profile.spec.style.references
    if not rel:
        return None
    root = profile.root.resolve()
    ctx = {"profile": profile.id, "field": "style.references", "value": rel}
    folder = (root / rel).resolve()
    if not folder.is_relative_to(root):
        raise AssetError(f"`references` {rel!r} leads outside the profile directory", file=rel,
                         fix=f"copy the stills into a folder inside {root}", **ctx)  # fmt: skip
    if not folder.is_dir():
        raise AssetError(f"the [style] references folder {rel!r} does not exist or is not a folder", file=rel,
                         fix=f"create {folder} with the brand's stills, or remove `references` from [style]",
                         **ctx)  # fmt: skip
    stills = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    for p in stills:
        if not p.resolve().is_relative_to(root):
            raise AssetError(f"the reference still {p.name} leads outside the profile directory", file=str(p),
                             fix="copy the still into the references folder instead of linking to it", **ctx)  # fmt: skip
    return stills[:MAX_REFERENCES], len(stills)


_REFERENCES: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_REFERENCES_MAX = 4096
_REFERENCES_LOCK = threading.Lock()


def _reference_embeddings(scorer: ClipScorer, stills: Sequence[Path], profile: BrandProfile) -> np.ndarray:
    """The stills' embeddings, each cached per (model, file SHA-256): decoded and embedded once."""
    what, ctx = "the reference still", {"profile": profile.id, "field": "style.references"}
    keys = []
    for p in stills:
        data = read_user_bytes(p, limit=MAX_IMAGE_BYTES, error=AssetError, what=what, **ctx)
        keys.append((scorer.name, hashlib.sha256(data).hexdigest()))
    with _REFERENCES_LOCK:
        missing = [(k, p) for k, p in zip(keys, stills, strict=True) if k not in _REFERENCES]
    if missing:
        images = []
        for _, p in missing:
            with read_image(p, what=what, fix="export it again as PNG or JPEG") as img:
                images.append(clip_size(np.asarray(img.convert("RGB"))))
        rows = scorer.embed_images(images)
        with _REFERENCES_LOCK:
            for (k, _), row in zip(missing, rows, strict=True):
                _REFERENCES[k] = row
            while len(_REFERENCES) > _REFERENCES_MAX:
                _REFERENCES.popitem(last=False)
    with _REFERENCES_LOCK:
        for k in keys:
            _REFERENCES.move_to_end(k)
        return np.stack([_REFERENCES[k] for k in keys])


# -- the checks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipChecks:
    """The ``style`` and ``prompt`` checks, the model that made them (None: none configured),
    the frames it saw and their per-frame values."""

    checks: tuple[Check, Check]
    model: str | None = None
    indices: tuple[int, ...] = ()
    style: tuple[float, ...] = ()
    prompt: tuple[float, ...] = ()
    thresholds: dict[str, float] = field(default_factory=dict)


def _prompts(prompt: str | Sequence[str] | None) -> list[str]:
    if prompt is None:
        return []
    items = [prompt] if isinstance(prompt, str) else list(prompt)
    return list(dict.fromkeys(p.strip() for p in items if isinstance(p, str) and p.strip()))


def clip_checks(
    frames: Sequence[tuple[int, np.ndarray]],
    profile: BrandProfile,
    prompt: str | Sequence[str] | None,
) -> ClipChecks:
    """The ``style`` and ``prompt`` checks of ``frames`` (``(index, uint8 RGB frame)`` pairs, as
    :attr:`QCCollector.clip_frames <brandstudio.qc.QCCollector.clip_frames>` gives them).

    ``prompt`` is the final prompt, or each shot's prompt for a multi-shot clip; None skips the
    prompt check. Without a CLIP model both checks are skipped (:data:`NO_CLIP_MODEL`).
    """
    qc = profile.spec.qc
    thresholds = {"style_warn": qc.style_warn, "style_fail": qc.style_fail,
                  "prompt_warn": qc.prompt_warn, "prompt_fail": qc.prompt_fail}  # fmt: skip
    source = clip_model_source(profile)
    if source is None:
        return ClipChecks((skipped("style", "cos", NO_CLIP_MODEL), skipped("prompt", "CLIPScore", NO_CLIP_MODEL)),
                          thresholds=thresholds)  # fmt: skip
    scorer = load_clip_model(source, profile=profile.id)
    if not frames:
        why = "no frames were sampled for CLIP"
        return ClipChecks((skipped("style", "cos", why), skipped("prompt", "CLIPScore", why)), model=source.value,
                          thresholds=thresholds)  # fmt: skip
    indices = tuple(int(i) for i, _ in frames)
    emb = scorer.embed_images([f for _, f in frames])
    k = len(indices)

    # style: each frame's cosine similarity to its closest reference still, mean over the frames
    per_style: tuple[float, ...] = ()
    refs = reference_stills(profile)
    if refs is None:
        style = skipped("style", "cos", "the profile has no [style] references to compare the frames with")
    elif not refs[0]:
        style = skipped("style", "cos", f"the [style] references folder {profile.spec.style.references!r} "
                        f"holds no stills ({', '.join(IMAGE_SUFFIXES)})")  # fmt: skip
    else:
        stills, total = refs
        sims = emb @ _reference_embeddings(scorer, stills, profile).T
        per_frame = sims.max(axis=1)
        per_style = tuple(round(float(v), 4) for v in per_frame)
        n = f"the first {len(stills)} of {total}" if total > len(stills) else f"{len(stills)}"
        what = f"mean CLIP similarity of {k} sampled frames to their closest of {n} reference stills"
        style = grade_min(
            "style", float(per_frame.mean()), qc.style_warn, qc.style_fail, "cos", what, digits=3
        )

    # prompt: CLIPScore of each frame against the prompt (the closest shot prompt), mean over the frames
    per_prompt: tuple[float, ...] = ()
    texts = _prompts(prompt)
    if not texts:
        why = ("no prompt to compare with: a render passes its final prompt, `brandstudio qc` reads it from "
               "the clip's brandstudio tags or its .json record")  # fmt: skip
        check_prompt = skipped("prompt", "CLIPScore", why)
    else:
        text_emb, cut = scorer.embed_texts(texts)
        scores = 100.0 * np.clip(emb @ text_emb.T, 0.0, None).max(axis=1)
        per_prompt = tuple(round(float(v), 3) for v in scores)
        to = "the prompt" if len(texts) == 1 else f"the closest of its {len(texts)} shot prompts"
        check_prompt = grade_min("prompt", float(scores.mean()), qc.prompt_warn, qc.prompt_fail, "CLIPScore",
                                 f"mean CLIPScore (100 × cosine) of {k} sampled frames to {to}", digits=1)  # fmt: skip
        if any(cut):
            check_prompt = replace(check_prompt, explanation=check_prompt.explanation
                                   + f"; the prompt was cut to the model's {scorer.max_tokens} tokens")  # fmt: skip
    return ClipChecks((style, check_prompt), model=source.value, indices=indices, style=per_style,
                      prompt=per_prompt, thresholds=thresholds)  # fmt: skip


def check(brief, profile: BrandProfile) -> None:
    """Before any work: with a CLIP model configured, it loads (kept for the QC step) and the
    ``[style] references`` stills read and embed, so a wrong model or a broken still is refused
    before generation rather than after it. Nothing happens without a CLIP model."""
    source = clip_model_source(profile)
    if source is None:
        return
    scorer = load_clip_model(source, profile=profile.id)
    refs = reference_stills(profile)
    if refs and refs[0]:
        _reference_embeddings(scorer, refs[0], profile)
