"""Onboarding a client: ``brandstudio profile new`` writes a complete, commented, valid profile.

From a logo, a few reference stills and (optionally) a font, music, a palette, a language and
region and the competitors' names: the assets are copied in, the palette is extracted from the
logo and stills when not given (k-means in CIELAB, swatches closer than ΔE2000 10 merged, the
five that cover most pixels kept), the font's glyphs are checked against the language and the
region's AI label, the shared templates are copied in to be edited, and brand.toml is written
with a comment on every section. The profile is built in a hidden folder beside ``DIR``,
validated there (:func:`~brandstudio.profile.load_profile`), and renamed into place: a failure
leaves nothing behind.

Example:
    >>> import numpy as np
    >>> red = np.zeros((32, 32, 3), np.uint8); red[..., 0] = 200
    >>> extract_palette([red, np.full((32, 32, 3), 240, np.uint8)], colours=3)
    ['#C80000', '#F0F0F0']
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RequestError
from ..files import check_writable
from ..frames import lab_to_srgb, srgb_to_lab
from ..post.fonts import missing_glyphs
from ..post.label import label_text
from ..profile import BrandProfile, load_profile
from ..profile.assets import read_image
from ..prompts.templates import shared_templates_dir
from .lut_profile import IMAGE_SUFFIXES

__all__ = ["LANGUAGE_SAMPLES", "NewProfile", "extract_palette", "new_profile"]

#: text a caption font must cover, per language (letters, digits, the punctuation captions use)
LANGUAGE_SAMPLES = {
    "en": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.,:;!?'\"()&%-–",
    "de": "ÄÖÜäöüßẞ",
    "fr": "àâæçéèêëîïôœùûüÿÀÂÇÉÈÊÔ«»",
    "es": "áéíñóúüÁÉÍÑÓÚ¿¡",
    "it": "àèéìòùÀÈÉÌÒÙ",
    "pt": "ãõáâàçéêíóôúÃÕÇ",
    "zh": "品牌视频字幕新品上市限时优惠欢迎光临的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年，。！？：、“”（）",
    "ja": "新商品のご案内です。期間限定！ブランドのお知らせ、ありがとうございます",
}
_MERGE_DELTA_E = 10.0  # swatches closer than this are one brand colour
_CLUSTERS = 12
_PIXELS_PER_IMAGE = 20_000


@dataclass(frozen=True)
class NewProfile:
    """A profile ``profile new`` made: where, the loaded profile, the palette, and what to do next."""

    path: Path
    profile: BrandProfile
    palette: tuple[str, ...]
    palette_extracted: bool
    placeholder_music: bool

    def next_steps(self) -> list[str]:
        steps = [f"look at it: brandstudio profile show {self.path}"]
        if self.palette_extracted:
            steps.append(f"check the extracted palette {', '.join(self.palette)} ([colour] palette in brand.toml)")
        if self.placeholder_music:
            steps.append("replace music/placeholder-bed.wav with the brand's licensed music ([audio] tracks)")
        steps += [
            f"fit a LUT to the brand's stills: brandstudio lut fit {self.path} --references {self.path}/references --apply",
            f"add blocked terms and safety rules to [safety], then render: brandstudio render {self.path} product-hero "
            '--var product="..."',
        ]
        return steps


def extract_palette(images: Sequence[np.ndarray], *, colours: int = 5, merge_delta_e: float = _MERGE_DELTA_E) -> list[str]:
    """The brand's swatches (hex, most pixels first) from uint8 RGB or RGBA images (transparent
    pixels ignored): k-means in CIELAB, clusters closer than ``merge_delta_e`` (ΔE2000) merged."""
    import colour
    from scipy.cluster.vq import kmeans2

    rng = np.random.default_rng(0)
    pixels = []
    for img in images:
        flat = img.reshape(-1, img.shape[-1])
        if flat.shape[1] == 4:
            flat = flat[flat[:, 3] >= 128]
        flat = flat[:, :3]
        if len(flat):
            pixels.append(flat[rng.permutation(len(flat))[:_PIXELS_PER_IMAGE]])
    if not pixels:
        raise RequestError("no opaque pixels to take a palette from", field="palette",
                           fix="pass --palette '#RRGGBB,...' or a logo and stills with visible colour")  # fmt: skip
    lab = srgb_to_lab(np.concatenate(pixels)).astype(np.float64)
    distinct = np.unique(np.round(lab), axis=0)
    k = max(1, min(_CLUSTERS, len(distinct)))
    centres, labels = kmeans2(lab, distinct[rng.permutation(len(distinct))[:k]], minit="matrix", iter=20)
    weights = np.bincount(labels, minlength=k).astype(float)
    kept: list[list] = []  # [lab, weight]
    for i in np.argsort(-weights):
        if weights[i] == 0:
            continue
        near = [s for s in kept if colour.delta_E(s[0], centres[i], method="CIE 2000") < merge_delta_e]
        if near:
            s = near[0]
            s[0] = (s[0] * s[1] + centres[i] * weights[i]) / (s[1] + weights[i])
            s[1] += weights[i]
        else:
            kept.append([centres[i].copy(), weights[i]])
    kept.sort(key=lambda s: -s[1])
    rgb = lab_to_srgb(np.array([s[0] for s in kept[:colours]], np.float32))
    return ["#{:02X}{:02X}{:02X}".format(*c) for c in rgb.reshape(-1, 3)]


def _slug(name: str) -> str:
    slug = "".join(c if c.isascii() and c.isalnum() else "-" for c in name.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return slug[:64] or "brand"


def _default_font() -> Path:
    """DejaVu Sans, shipped with matplotlib (Latin, Greek, Cyrillic): a font every install has."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"


def _check_font(font: Path, language: str, region: str) -> None:
    text = LANGUAGE_SAMPLES.get(language.split("-")[0], "") + LANGUAGE_SAMPLES["en"] + (label_text(region, language) or "")
    missing = missing_glyphs(font, text)
    if missing:
        raise RequestError(
            f"the font {font.name} has no glyphs for {''.join(missing[:20])} (needed for language {language!r}"
            + (f" and the {region} AI label" if label_text(region, language) else "") + ")",
            field="font", value=str(font),
            fix="pass --font with a font that covers the language (e.g. Noto Sans SC for zh, Noto Sans JP for ja)",
        )  # fmt: skip


def _placeholder_bed(path: Path, seconds: float = 8.0, sr: int = 48000) -> None:
    """A quiet, loopable chord (so a new profile renders at once); to be replaced by licensed music."""
    from scipy.io import wavfile

    t = np.arange(int(seconds * sr)) / sr
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63)) / 3
    swell = 0.5 - 0.5 * np.cos(2 * np.pi * t / seconds)  # starts and ends silent: loops without a click
    pcm = np.rint(0.2 * chord * swell * 32767).astype(np.int16)
    wavfile.write(str(path), sr, np.stack([pcm, pcm], axis=1))


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(_toml_str(i) for i in items) + "]"


def _toml_str(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped) + '"'


def _brand_toml(*, profile_id: str, name: str, client: str, language: str, region: str, palette: Sequence[str],
                font: str, tracks: Sequence[str], competitors: Sequence[str], style: str) -> str:  # fmt: skip
    track_lines = ",\n".join(f'    {{ file = {_toml_str(t)}, mood = "calm" }}' for t in tracks)
    return f'''# {name}: made by `brandstudio profile new`. Paths are relative to this directory;
# `brandstudio profile schema` documents every field, `brandstudio profile validate .` checks it.

[brand]
id = {_toml_str(profile_id)}
name = {_toml_str(name)}
client = {_toml_str(client)}
version = "0.1.0"
language = {_toml_str(language)}
region = {_toml_str(region)}           # which AI-content label the clips carry (eu, cn, us, none)

[model]
id = "tiny"                 # the offline demo model; "Wan-AI/Wan2.2-T2V-A14B-Diffusers" on a GPU
preset = "quality"
steps = 4                   # 40 for the real A14B model
width = 256                 # landscape generation canvas (832 x 480 for the real model)
height = 144
fps = 16
max_frames = 81

[style]
references = "references"   # the brand's stills: `lut fit` and `lora train` learn the look from them
# [[style.loras]] the brand's LoRA adapters, once trained (`brandstudio lora train`)

[colour]
# lut = "luts/brand.cube"   # `brandstudio lut fit . --apply` fits one to the references and sets it
palette = {_toml_list(palette)}   # QC measures every clip against these swatches
delta_e_tolerance = 14.0

[prompt]
style = {_toml_str(style)}
negative = "blurry, low quality, watermark, text, logo"

[safety]
# Blocked terms match whole words, competitor names anywhere (inside hashtags too), through
# look-alike letters, invisible characters and traditional/simplified Chinese (README, Safety).
blocked_terms = []
competitors = {_toml_list(competitors)}
competitor_action = "block"
nsfw = "block"

[captions]
font = {_toml_str(font)}
size = 0.062
colour = "#FFFFFF"
stroke_colour = "#000000"
stroke_width = 0.09
position = "bottom"
max_lines = 2

[logo]
file = "logo.png"
position = "top-right"
scale = 0.22
opacity = 0.92

[audio]
tracks = [
{track_lines},
]
default_mood = "calm"
loudness = -14.0
true_peak = -1.0

[[scenes]]                  # a common scene: `cache prewarm` renders it ahead, `lut fit` samples the model's look from it
id = "hero-product"
prompt = "a product standing on a clean surface, soft natural light, shallow depth of field"
seed = 1
aspect = "16:9"

[output]
aspects = ["9:16", "16:9", "1:1", "4:5"]
resolution = 720
fps = 16
duration = 5.0
'''


def new_profile(
    path: str | Path,
    *,
    name: str,
    logo: str | Path,
    references: str | Path,
    palette: Sequence[str] | None = None,
    font: str | Path | None = None,
    music: Sequence[str | Path] = (),
    language: str = "en",
    region: str = "none",
    competitors: Sequence[str] = (),
    client: str = "",
    style: str = "clean commercial look, natural light",
    profile_id: str | None = None,
) -> NewProfile:
    """Write a complete profile at ``path`` (which must not exist, or be an empty folder)."""
    dest = Path(path)
    check_writable(dest / "brand.toml", error=RequestError, what="the new profile's", field="path")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise RequestError(f"{dest} already exists and is not an empty folder", field="path", value=str(dest),
                           fix="name a new folder for the profile")  # fmt: skip
    refs = sorted(p for p in Path(references).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if Path(references).is_dir() else []
    if not refs:
        raise RequestError(f"no reference stills in {references}", field="references", value=str(references),
                           fix="pass a folder of the brand's stills (PNG, JPEG, WebP)")  # fmt: skip
    font_path = Path(font) if font is not None else _default_font()
    _check_font(font_path, language, region)
    with read_image(logo, what="the logo", fix="pass the logo as a PNG (with transparency)") as img:
        logo_rgba = img.convert("RGBA")
    stills = []
    for p in refs:
        with read_image(p, what="the reference still", fix="export it again as PNG or JPEG") as img:
            stills.append(np.asarray(img.convert("RGB")))
    extracted = palette is None
    swatches = tuple(extract_palette([np.asarray(logo_rgba), *stills]) if extracted else palette)

    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.new-", dir=dest.parent))
    try:
        logo_rgba.save(work / "logo.png")
        (work / "references").mkdir()
        for p in refs:
            shutil.copy2(p, work / "references" / p.name)
        (work / "fonts").mkdir()
        shutil.copy2(font_path, work / "fonts" / font_path.name)
        (work / "music").mkdir()
        tracks = []
        for m in music:
            shutil.copy2(m, work / "music" / Path(m).name)
            tracks.append(f"music/{Path(m).name}")
        if not tracks:
            _placeholder_bed(work / "music" / "placeholder-bed.wav")
            tracks = ["music/placeholder-bed.wav"]
        shutil.copytree(shared_templates_dir(), work / "templates")
        (work / "brand.toml").write_text(_brand_toml(
            profile_id=profile_id or _slug(name), name=name, client=client, language=language, region=region,
            palette=swatches, font=f"fonts/{font_path.name}", tracks=tracks, competitors=competitors, style=style,
        ), encoding="utf-8")  # fmt: skip
        load_profile(work)  # validated where it was built: a problem leaves nothing at `dest`
        if dest.exists():
            dest.rmdir()
        work.rename(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    profile = load_profile(dest)
    return NewProfile(dest, profile, swatches, extracted, not music)
