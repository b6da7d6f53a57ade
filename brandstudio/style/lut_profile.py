"""``brandstudio lut fit`` against a profile: stills and clips read as untrusted input, the
before/after preview, and the profile's ``[colour] lut`` updated on request.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for sub in ("before", "after"):
    ...     (d / sub).mkdir()
    ...     Image.fromarray(np.full((8, 8, 3), 100 if sub == "before" else 120, np.uint8)).save(d / sub / "a.png")
    >>> [p[0].shape for p in read_pairs(d / "before", d / "after")]
    [(8, 8, 3)]
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image

from .. import generation
from ..errors import ProfileError, RequestError
from ..files import MAX_TOML_BYTES, read_user_text, write_bytes_atomic
from ..generation.cache import SceneCache
from ..post.grade import LUT
from ..profile import BrandProfile
from ..profile.assets import read_image
from ..prompts.compose import brand_negative, brand_prompt
from .brand_toml import rewrite_brand_toml
from .lut_fit import apply_lut

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "read_footage",
    "read_pairs",
    "read_stills",
    "sample_footage",
    "set_profile_lut",
    "write_preview",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm")
#: frames read from each clip of footage (evenly spread)
FRAMES_PER_CLIP = 8
_FIX_IMAGE = "export it again as PNG or JPEG"


def _spread(count: int) -> np.ndarray:
    """Up to :data:`FRAMES_PER_CLIP` frame indices spread evenly over ``count`` frames."""
    return np.linspace(0, max(count - 1, 0), min(FRAMES_PER_CLIP, max(count, 1))).astype(int)


def _rgb(path: Path, what: str) -> np.ndarray:
    with read_image(path, what=what, fix=_FIX_IMAGE) as img:
        return np.asarray(img.convert("RGB"))


def _images_in(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise RequestError(f"{what}: {folder} is not a folder", field=what, value=str(folder),
                           fix="pass a folder of stills (PNG, JPEG, WebP, TIFF)")  # fmt: skip
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not found:
        raise RequestError(f"{what}: no stills in {folder}", field=what, value=str(folder),
                           fix=f"put the stills there ({', '.join(IMAGE_SUFFIXES)})")  # fmt: skip
    return found


def read_pairs(before_dir: str | Path, after_dir: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """The graded pairs: every still of ``before_dir`` with the still of the same stem in ``after_dir``."""
    before = _images_in(Path(before_dir), "pairs.before")
    after = {p.stem: p for p in _images_in(Path(after_dir), "pairs.after")}
    missing = [p.name for p in before if p.stem not in after]
    if missing:
        raise RequestError(
            f"graded pairs: no graded still in {after_dir} for {', '.join(missing[:5])}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""),
            field="pairs.after", fix="give each before still its graded version with the same name",
        )  # fmt: skip
    pairs = []
    for p in before:
        b, a = _rgb(p, "the before still"), _rgb(after[p.stem], "the graded still")
        if b.shape != a.shape:
            raise RequestError(f"graded pair {p.stem}: the before still is {b.shape[1]}x{b.shape[0]}, the graded one "
                               f"{a.shape[1]}x{a.shape[0]}", field="pairs", value=p.stem,
                               fix="export both stills of a pair at the same size, without cropping")  # fmt: skip
        pairs.append((b, a))
    return pairs


def read_stills(folder: str | Path, what: str = "references") -> list[np.ndarray]:
    """Every still of ``folder`` as uint8 RGB."""
    return [_rgb(p, f"the {what} still") for p in _images_in(Path(folder), what)]


def read_footage(paths: Iterable[str | Path]) -> list[np.ndarray]:
    """Frames of the model's footage: stills as they are, clips as :data:`FRAMES_PER_CLIP` frames each."""
    frames: list[np.ndarray] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            frames.extend(read_footage(sorted(p for p in path.iterdir() if p.suffix.lower() in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES))))
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            frames.append(_rgb(path, "the footage still"))
        elif path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
            try:  # a few frames spread over the clip, decoded one at a time (bounded memory)
                count = iio.improps(path, plugin="pyav").shape[0]
                wanted = set(_spread(count))
                frames.extend(f for i, f in enumerate(iio.imiter(path, plugin="pyav")) if i in wanted)
            except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's
                raise RequestError(f"footage {path.name} could not be read as a video: {exc}", field="footage",
                                   value=str(path), fix="pass an MP4 the model rendered, or stills") from None  # fmt: skip
        else:
            raise RequestError(f"footage {path}: not a still, a clip or a folder of them", field="footage",
                               value=str(path), fix=f"pass {', '.join(VIDEO_SUFFIXES)} clips or stills")  # fmt: skip
    return frames


def sample_footage(profile: BrandProfile, *, samples: int = 2, duration: float = 1.0,
                   cache: SceneCache | str | Path | bool | None = True) -> list[np.ndarray]:  # fmt: skip
    """The model's own footage for ``profile``: its first ``samples`` ``[[scenes]]`` generated as
    the model makes them (with the brand's LoRAs, before any grade), through the scene cache, so a
    prewarmed scene costs nothing; :data:`FRAMES_PER_CLIP` frames of each."""
    scenes = list(profile.spec.scenes[:samples])
    if not scenes:
        raise RequestError(
            f"profile {profile.id!r} has no [[scenes]] to sample the model's footage from", field="footage",
            fix="pass --footage with clips the model rendered for this profile, or add [[scenes]] to brand.toml",
        )  # fmt: skip
    generator = generation.load_generator(profile)
    store = SceneCache.from_option(cache)
    frames: list[np.ndarray] = []
    for scene in scenes:
        spec = generation.clip_spec(profile, generator, prompt=brand_prompt(profile.spec, scene.prompt),
                                    negative=brand_negative(profile.spec), seed=scene.seed, aspect=scene.aspect,
                                    duration=duration)  # fmt: skip
        clip = generation.generate_clip(generator, spec, profile=profile, cache=store).frames
        frames.extend(clip[_spread(len(clip))])
    return frames


def write_preview(path: str | Path, lut: LUT, panels: Sequence[np.ndarray], interpolation: str = "tetrahedral",
                  width: int = 384) -> Path:  # fmt: skip
    """A before/after image: ``panels[0]`` as it is, through ``lut``, then any further panels
    (the colourist's grade), side by side at ``width`` px each, as PNG."""
    before = panels[0]
    graded = np.clip(np.rint(apply_lut(lut, before, interpolation) * 255.0), 0, 255).astype(np.uint8)
    row = [before, graded, *panels[1:]]
    h = max(1, round(before.shape[0] * width / before.shape[1]))
    sheet = Image.new("RGB", (width * len(row), h))
    for i, img in enumerate(row):
        sheet.paste(Image.fromarray(img).resize((width, h), Image.Resampling.LANCZOS), (i * width, 0))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return write_bytes_atomic(path, buf.getvalue())


_COLOUR_TABLE = re.compile(r"^\[colour\][ \t]*$", re.M)
_NEXT_TABLE = re.compile(r"^\[", re.M)
_LUT_LINE = re.compile(r"^lut[ \t]*=.*$", re.M)


def set_profile_lut(profile_dir: str | Path, cube: str | Path) -> None:
    """Point ``[colour] lut`` of the profile at ``cube`` (a file inside it), keeping every other
    line and comment of brand.toml; the profile must load afterwards, else brand.toml is put back."""
    root = Path(profile_dir)
    toml = root / "brand.toml"
    rel = Path(cube).resolve().relative_to(root.resolve()).as_posix()
    text = read_user_text(toml, limit=MAX_TOML_BYTES, error=ProfileError, what="brand.toml")
    line = f'lut = "{rel}"'
    header = _COLOUR_TABLE.search(text)
    if header is None:
        updated = text.rstrip("\n") + f"\n\n[colour]\n{line}\n"
    else:
        end = _NEXT_TABLE.search(text, header.end())
        body_end = end.start() if end else len(text)
        body = text[header.end():body_end]
        body = _LUT_LINE.sub(line, body, count=1) if _LUT_LINE.search(body) else f"\n{line}" + body
        updated = text[: header.end()] + body + text[body_end:]
    rewrite_brand_toml(root, text, updated)
