"""The data a brand LoRA learns from: stills and clips with captions, read as untrusted input.

A data folder holds stills (PNG, JPEG, WebP, TIFF) and clips (MP4, MOV, MKV, WebM). Each one's
caption is ``name.txt`` beside it, or a row of ``captions.csv`` (columns ``file,caption``) in the
folder; the profile's trigger word starts every caption, so the LoRA's look is called up by it.
Every item is resized to one training size (so all must share one aspect ratio, or be
centre-cropped with ``crop=True``); a clip gives its first ``frames`` frames.

Problems are :class:`~brandstudio.errors.TrainingError` naming the file and the fix: an empty
folder, an unreadable image or clip, a caption without its still, a CSV row naming a missing
file, mixed aspect ratios.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> Image.fromarray(np.full((36, 64, 3), 200, np.uint8)).save(d / "cup.png")
    >>> _ = (d / "cup.txt").write_text("a cup on a table")
    >>> [item.caption for item in find_items(d, trigger="aurora look")]
    ['aurora look, a cup on a table']
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image

from ..errors import AssetError, BrandStudioError, TrainingError
from ..files import MAX_CSV_BYTES, read_user_text, sha256_file
from ..profile.assets import read_image
from .lut_profile import IMAGE_SUFFIXES, VIDEO_SUFFIXES

__all__ = ["CAPTIONS_CSV", "TrainingItem", "data_fingerprint", "find_items", "load_pixels"]

CAPTIONS_CSV = "captions.csv"
"""The optional caption table of a data folder: columns ``file`` and ``caption``."""

#: aspect ratios closer than this are one aspect (a 1920x1080 and a 1280x720 still mix)
_ASPECT_TOLERANCE = 0.02


@dataclass(frozen=True)
class TrainingItem:
    """One still or clip and its caption (trigger word first).

    Attributes:
        path: the file.
        caption: what the model is told it shows.
        kind: ``"image"`` or ``"video"``.
        size: ``(width, height)`` as stored.
    """

    path: Path
    caption: str
    kind: str
    size: tuple[int, int]


def _csv_captions(folder: Path) -> dict[str, str]:
    table = folder / CAPTIONS_CSV
    if not table.exists():
        return {}
    text = read_user_text(table, limit=MAX_CSV_BYTES, error=TrainingError, what="the caption table")
    rows = list(csv.DictReader(io.StringIO(text)))
    if rows and not {"file", "caption"} <= set(rows[0]):
        raise TrainingError(
            f"{CAPTIONS_CSV} must have the columns `file` and `caption`, got {sorted(rows[0])}",
            file=str(table), fix="write the header line `file,caption`",
        )  # fmt: skip
    captions = {}
    for line, row in enumerate(rows, start=2):
        name = (row.get("file") or "").strip()
        if not (folder / name).is_file() or "/" in name or "\\" in name:
            raise TrainingError(
                f"{CAPTIONS_CSV} line {line} names `{name}`, which is not a file in {folder.name}/",
                file=str(table), field="file", value=name,
                fix="name a still or clip of the same folder (no paths), or remove the row",
            )  # fmt: skip
        captions[name] = (row.get("caption") or "").strip()
    return captions


def _still(path: Path) -> Image.Image:
    """The still at ``path`` (within the image limits); a bad one is the training data's error."""
    try:
        return read_image(path, what="the training still", fix="export it again as PNG or JPEG, or remove it")
    except AssetError as exc:
        raise TrainingError(exc.message, file=exc.file, fix=exc.fix) from None


def _size(path: Path, kind: str) -> tuple[int, int]:
    if kind == "image":
        with _still(path) as img:
            return img.size
    try:
        shape = iio.improps(path, plugin="pyav").shape  # (frames, height, width, 3)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's
        raise TrainingError(f"training clip {path.name} could not be read as a video: {exc}", file=str(path),
                            fix="export it again as H.264 MP4, or remove it from the data folder") from None  # fmt: skip
    return int(shape[2]), int(shape[1])


def find_items(
    folder: str | Path, *, trigger: str, default_caption: str = "", crop: bool = False
) -> list[TrainingItem]:
    """Every still and clip of ``folder`` with its caption, checked before any training.

    Args:
        folder: the data folder (the profile's ``[style] references`` by default).
        trigger: put first in every caption.
        default_caption: the caption of an item with none (a ``name.txt`` is better).
        crop: allow mixed aspect ratios (each item is centre-cropped to the training aspect).

    Raises:
        TrainingError: no usable item, an unreadable file, a caption without its still, mixed
            aspect ratios without ``crop``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise TrainingError(f"the training data folder {root} does not exist or is not a folder",
                            field="data", value=str(root), fix="pass a folder of stills and clips with captions")  # fmt: skip
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    media = [p for p in entries if p.is_file() and p.suffix.lower() in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES)]
    if not media:
        raise TrainingError(
            f"the training data folder {root} holds no stills or clips",
            field="data", value=str(root),
            fix=f"put the brand's stills ({', '.join(IMAGE_SUFFIXES)}) or clips ({', '.join(VIDEO_SUFFIXES)}) there",
        )  # fmt: skip
    stems = {p.stem for p in media}
    orphans = [p.name for p in entries if p.suffix.lower() == ".txt" and p.stem not in stems]
    if orphans:
        raise TrainingError(
            f"caption file{'s' if len(orphans) > 1 else ''} without a still or clip in {root.name}/: "
            + ", ".join(orphans[:5]) + (f" and {len(orphans) - 5} more" if len(orphans) > 5 else ""),
            file=str(root / orphans[0]),
            fix="give each caption the name of its still or clip (cup.png -> cup.txt), or remove it",
        )  # fmt: skip
    table = _csv_captions(root)
    items = []
    for path in media:
        beside = path.with_suffix(".txt")
        if beside.is_file():
            caption = read_user_text(
                beside, limit=MAX_CSV_BYTES, error=TrainingError, what="the caption"
            ).strip()
        else:
            caption = table.get(path.name, default_caption)
        kind = "image" if path.suffix.lower() in IMAGE_SUFFIXES else "video"
        text = ", ".join(part for part in (trigger.strip(), caption.strip()) if part)
        items.append(TrainingItem(path=path, caption=text, kind=kind, size=_size(path, kind)))
    if not crop:
        _check_one_aspect(items)
    return items


def _check_one_aspect(items: Sequence[TrainingItem]) -> None:
    first = items[0]
    aspect = first.size[0] / first.size[1]
    odd = [it for it in items if abs(it.size[0] / it.size[1] - aspect) > _ASPECT_TOLERANCE * aspect]
    if odd:
        shown = ", ".join(f"{it.path.name} {it.size[0]}x{it.size[1]}" for it in odd[:4])
        raise TrainingError(
            f"training stills and clips have mixed sizes: {first.path.name} is {first.size[0]}x{first.size[1]} "
            f"but {shown}" + (f" and {len(odd) - 4} more" if len(odd) > 4 else ""),
            file=str(odd[0].path), field="data",
            fix="crop them to one aspect ratio, or train with --crop (each is centre-cropped to the training size)",
        )  # fmt: skip


def _fit(frame: Image.Image, width: int, height: int) -> np.ndarray:
    """Centre-crop ``frame`` to ``width:height`` and resize it (Lanczos)."""
    w, h = frame.size
    scale = max(width / w, height / h)
    cw, ch = round(width / scale), round(height / scale)
    left, top = (w - cw) // 2, (h - ch) // 2
    box = (left, top, left + cw, top + ch)
    return np.asarray(frame.convert("RGB").resize((width, height), Image.Resampling.LANCZOS, box=box))


def load_pixels(item: TrainingItem, *, width: int, height: int, frames: int) -> np.ndarray:
    """``item`` as uint8 ``(T, height, width, 3)``: a still is one frame; a clip its first ``frames``
    frames (fewer if it is shorter, cut to the ``4k + 1`` frames the Wan VAE takes)."""
    try:
        if item.kind == "image":
            with read_image(
                item.path, what="the training still", fix="export it again as PNG or JPEG"
            ) as img:
                return _fit(img, width, height)[None]
        out = []
        for i, frame in enumerate(iio.imiter(item.path, plugin="pyav")):
            if i >= frames:
                break
            out.append(_fit(Image.fromarray(frame), width, height))
    except BrandStudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's
        raise TrainingError(f"training clip {item.path.name} could not be decoded: {exc}", file=str(item.path),
                            fix="export it again as H.264 MP4, or remove it from the data folder") from None  # fmt: skip
    keep = (len(out) - 1) // 4 * 4 + 1 if out else 0
    if keep < 1:
        raise TrainingError(f"training clip {item.path.name} has no frames", file=str(item.path),
                            fix="remove it from the data folder")  # fmt: skip
    return np.stack(out[:keep])


def data_fingerprint(items: Sequence[TrainingItem]) -> str:
    """SHA-256 over every item's content and caption: the LoRA's ``data hash``, and what a
    resumed run checks it is training on the same data."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps([item.path.name, sha256_file(item.path), item.caption]).encode("utf-8"))
    return digest.hexdigest()
