#!/usr/bin/env python3
"""Regenerate the demo brand assets of ``brand_profiles/aurora-coffee`` and ``brand_profiles/qinglan-tea``.

Everything here is made from scratch by this script (no samples, images or LUTs from anywhere),
except the fonts, which are subsets of the OFL-licensed Noto fonts shipped by Debian.

Usage::

    python brand_profiles/make_assets.py                                # LUTs, logos, music, READMEs
    python brand_profiles/make_assets.py --font-source /tmp/fonts/x     # ... and the font subsets + OFL.txt

``--font-source DIR`` is a directory holding the extracted Debian packages ``fonts-noto-core`` and
``fonts-noto-cjk`` (it is searched recursively for ``NotoSerif-Bold.ttf``, ``NotoSansCJK-Bold.ttc``
and the packages' ``copyright`` files, also in ``DIR/../..`` so ``.../usr/share/fonts`` works too)::

    mkdir -p /tmp/fonts && cd /tmp/fonts && apt-get download fonts-noto-cjk fonts-noto-core \
        && for f in *.deb; do dpkg -x $f x; done

Without ``--font-source`` the fonts already in the profiles are kept (the logos are drawn with them).

What it writes, per profile:

* ``luts/*.cube``   33-point 3D LUTs (colour-science), a creative grade in display-referred [0, 1]:
  aurora-warm = filmic warm grade (warm lift, soft S-curve, amber split-toned highlights, +sat);
  qinglan-jade = soft ink-wash grade (lifted jade blacks, cool jade shadows, lower contrast, -sat).
* ``logo.png``      RGBA, 512 px wide, drawn with PIL at 4x and downscaled (premultiplied).
* ``fonts/``        font subset (fontTools.subset), ``OFL.txt`` and ``README.md``.
* ``music/*.m4a``   synthesised with numpy, stereo 48 kHz, AAC 160k via the imageio-ffmpeg binary;
  aurora "morning-roast" is a quiet lo-fi loop (~-22 LUFS, mood "calm") and "bright-brew" an
  upbeat 124 bpm loop (~-16 LUFS, mood "upbeat"), qinglan "qinglan-breeze" a loud
  pentatonic Karplus-Strong (guzheng-like) piece (~-9 LUFS, peaks near 0 dBFS).
  Both are seamless loops (the reverb/release tails are wrapped round to the start).
* ``references/``   12 reference stills and 8 moving clips (256x144) in the brand's swatches with a
  caption each, drawn like the demo model's training footage (brandstudio.generation.procedural).
* ``loras/*.safetensors``  the brand's LoRA for the offline ``tiny`` model, trained by
  ``brandstudio lora train`` on those (``DEMO_LORA_TRAINING``; ``--skip-loras`` keeps them).
* ``README.md``     and ``music/README.md``.

The output is deterministic: fixed random seeds, no timestamps in the fonts, bit-exact ffmpeg flags.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
AURORA = HERE / "aurora-coffee"
QINGLAN = HERE / "qinglan-tea"
SR = 48000

AURORA_FONT = "fonts/NotoSerif-Bold.ttf"
QINGLAN_FONT = "fonts/NotoSansSC-Bold.otf"


def log(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------------------------
# LUTs
# ----------------------------------------------------------------------------------------------
REC709_Y = np.array([0.2126, 0.7152, 0.0722])


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _lgg(x: np.ndarray, lift, gamma, gain) -> np.ndarray:
    """ASC-CDL-like lift/gamma/gain per channel, monotonic on [0, 1]."""
    lift, gamma, gain = (np.asarray(v, float) for v in (lift, gamma, gain))
    y = gain * (x + lift * (1.0 - x))
    return np.clip(y, 0.0, 1.0) ** (1.0 / gamma)


def _saturation(x: np.ndarray, s: float) -> np.ndarray:
    y = (x @ REC709_Y)[..., None]
    return y + s * (x - y)


def _s_curve(x: np.ndarray, amount: float, pivot: float = 0.45) -> np.ndarray:
    """Soft filmic contrast: blends with a smooth sigmoid through ``pivot``; monotonic for amount<=1."""
    k = 6.0
    sig = 1.0 / (1.0 + np.exp(-k * (x - pivot)))
    lo, hi = 1.0 / (1.0 + np.exp(k * pivot)), 1.0 / (1.0 + np.exp(-k * (1.0 - pivot)))
    sig = (sig - lo) / (hi - lo)
    return (1.0 - amount) * x + amount * sig


def grade_aurora(rgb: np.ndarray) -> np.ndarray:
    x = _lgg(rgb, lift=(0.03, 0.018, 0.004), gamma=(1.05, 1.0, 0.96), gain=(1.0, 0.975, 0.92))
    x = _s_curve(x, 0.32, pivot=0.42)
    luma = (x @ REC709_Y)[..., None]
    hi = _smoothstep(0.4, 1.15, luma)           # amber highlights
    sh = 1.0 - _smoothstep(0.0, 0.45, luma)     # warm brown shadows
    x = x + hi * np.array([0.03, 0.01, -0.035]) + sh * np.array([0.015, 0.004, -0.012])
    x = _saturation(x, 1.12)
    # filmic shoulder from 0.8 up: highlights roll off smoothly towards 1 and never clip flat
    s = 0.8
    x = 1.06 * x
    x = np.where(x > s, s + (1 - s) * np.tanh((x - s) / (1 - s)), x)
    return np.clip(x, 0.0, 1.0)


def grade_qinglan(rgb: np.ndarray) -> np.ndarray:
    x = _saturation(rgb, 0.80)                                      # ink-wash: quieter colour
    x = np.clip(x, 0, 1)
    x = _lgg(x, lift=(0.04, 0.065, 0.06), gamma=(0.97, 1.04, 1.03), gain=(0.95, 0.99, 0.98))
    x = _s_curve(x, -0.18, pivot=0.5)                               # lower contrast, soft
    luma = (x @ REC709_Y)[..., None]
    sh = 1.0 - _smoothstep(0.0, 0.55, luma)                          # cool jade shadows
    hi = _smoothstep(0.6, 1.0, luma)                                 # clean, barely cool highlights
    x = x + sh * np.array([-0.035, 0.02, 0.012]) + hi * np.array([-0.01, 0.0, 0.012])
    # paper-white ceiling: soft highlights, no pure white
    x = 0.965 * x + 0.01
    return np.clip(x, 0.0, 1.0)


def make_lut(path: Path, fn, name: str, title: str) -> None:
    import colour

    lut = colour.LUT3D(size=33, name=name)
    table = fn(lut.table.astype(np.float64))
    lut.table = np.clip(table, 0.0, 1.0)
    lut.comments = [title, "generated by brand_profiles/make_assets.py (CC0 / same licence as the repo)"]
    path.parent.mkdir(parents=True, exist_ok=True)
    colour.io.write_LUT(lut, str(path), decimals=6)
    log(f"  wrote {path.relative_to(REPO)}")


# ----------------------------------------------------------------------------------------------
# logos
# ----------------------------------------------------------------------------------------------
def _hex(c: str, a: int = 255) -> tuple[int, int, int, int]:
    c = c.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), a


def _vgradient(size, top: str, bottom: str, y0: int, y1: int):
    from PIL import Image

    w, h = size
    t = np.clip((np.arange(h) - y0) / max(1, y1 - y0), 0, 1)[:, None, None]
    a, b = np.array(_hex(top), float), np.array(_hex(bottom), float)
    arr = (a * (1 - t) + b * t).repeat(w, axis=1)
    return Image.fromarray(arr.round().astype(np.uint8))


def _paste_masked(canvas, fill, mask) -> None:
    """Composite ``fill`` (RGBA image or colour) onto ``canvas`` through the L-mode ``mask``."""
    from PIL import Image

    if not isinstance(fill, Image.Image):
        fill = Image.new("RGBA", canvas.size, fill)
    layer = fill.copy()
    alpha = np.asarray(layer.getchannel("A"), float) * np.asarray(mask, float) / 255.0
    layer.putalpha(Image.fromarray(alpha.round().astype(np.uint8)))
    canvas.alpha_composite(layer)


def _tracked_text(draw_img, xy, text: str, font, fill, tracking: float, stroke: int = 0, stroke_fill=None) -> float:
    """Draw text letter by letter with extra tracking (em fraction), keeping pair kerning."""
    from PIL import ImageDraw

    d = ImageDraw.Draw(draw_img)
    x, y = xy
    size = font.size
    for i, ch in enumerate(text):
        d.text((x, y), ch, font=font, fill=fill, stroke_width=stroke, stroke_fill=stroke_fill)
        if i + 1 < len(text):
            pair = font.getlength(text[i : i + 2])  # includes kerning
            x += pair - font.getlength(text[i + 1]) + tracking * size
        else:
            x += font.getlength(ch)
    return x


def _tracked_width(text: str, font, tracking: float) -> float:
    return font.getlength(text) + tracking * font.size * (len(text) - 1)


def _finish_logo(img, path: Path) -> None:
    from PIL import Image

    bbox = img.getchannel("A").point(lambda v: 255 if v > 2 else 0).getbbox()
    pad = 48
    l, t, r, b = bbox
    img = img.crop((max(0, l - pad), max(0, t - pad), min(img.width, r + pad), min(img.height, b + pad)))
    w = 512
    h = max(1, round(img.height * w / img.width))
    out = img.convert("RGBa").resize((w, h), Image.LANCZOS).convert("RGBA")
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path, optimize=True)
    log(f"  wrote {path.relative_to(REPO)} ({out.width}x{out.height})")


def make_aurora_logo(profile: Path) -> None:
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    S = 4
    W, H = 512 * S, 200 * S
    img = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    cx, horizon, R = 100 * S, 128 * S, 74 * S
    brown, amber, cream, dark = "#4A2A1A", "#D98E32", "#F4E4C6", "#2E1A10"

    # sunrise rays: a fan of rounded strokes above the sun
    rays = Image.new("L", (W, H), 0)
    d = ImageDraw.Draw(rays)
    for ang in np.linspace(200, 340, 7):
        a = np.deg2rad(ang)
        r0, r1 = R + 12 * S, R + (26 if int(ang) % 40 == 0 else 22) * S
        p0 = (cx + r0 * np.cos(a), horizon + r0 * np.sin(a))
        p1 = (cx + r1 * np.cos(a), horizon + r1 * np.sin(a))
        d.line([p0, p1], fill=255, width=7 * S)
        for p in (p0, p1):
            d.ellipse([p[0] - 3.5 * S, p[1] - 3.5 * S, p[0] + 3.5 * S, p[1] + 3.5 * S], fill=255)
    _paste_masked(img, _hex(amber), rays)

    # the sun: a half disc with an amber->copper gradient
    sun = Image.new("L", (W, H), 0)
    ImageDraw.Draw(sun).pieslice([cx - R, horizon - R, cx + R, horizon + R], 180, 360, fill=255)
    _paste_masked(img, _vgradient((W, H), "#F2B24C", "#C4612A", horizon - R, horizon), sun)

    # coffee bean rising out of the sun (own layer, then rotated)
    bw, bh = 50 * S, 72 * S
    bean = Image.new("L", (W, H), 0)
    bcx, bcy = cx, horizon - 30 * S
    ImageDraw.Draw(bean).ellipse([bcx - bw / 2, bcy - bh / 2, bcx + bw / 2, bcy + bh / 2], fill=255)
    crease = Image.new("L", (W, H), 0)
    ys = np.linspace(bcy - bh * 0.40, bcy + bh * 0.40, 80)
    xs = bcx + 0.13 * bw * np.sin((ys - bcy) / (bh * 0.40) * np.pi)
    ImageDraw.Draw(crease).line(list(zip(xs, ys)), fill=255, width=6 * S, joint="curve")
    bean = bean.rotate(-28, resample=Image.BICUBIC, center=(bcx, bcy))
    crease = crease.rotate(-28, resample=Image.BICUBIC, center=(bcx, bcy))
    # a cream halo separates the bean from the sun
    halo = bean.filter(ImageFilter.MaxFilter(4 * S + 1))
    _paste_masked(img, _hex(cream), halo)
    _paste_masked(img, _hex(brown), bean)
    _paste_masked(img, _hex(cream), crease)

    # horizon: a rounded bar
    bar = Image.new("L", (W, H), 0)
    ImageDraw.Draw(bar).rounded_rectangle([cx - R - 22 * S, horizon + 4 * S, cx + R + 22 * S, horizon + 13 * S],
                                          radius=5 * S, fill=255)
    _paste_masked(img, _hex(cream), bar.filter(ImageFilter.MaxFilter(4 * S + 1)))
    _paste_masked(img, _hex(dark), bar)

    # wordmark
    font_path = profile / AURORA_FONT
    big = ImageFont.truetype(str(font_path), 62 * S)
    small = ImageFont.truetype(str(font_path), 17 * S)
    tx = 206 * S
    text = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    asc = big.getbbox("AURORA")
    # a thin cream keyline keeps the dark wordmark readable over dark footage
    _tracked_text(text, (tx, horizon - asc[3] - 6 * S), "AURORA", big, _hex(dark), 0.06, 2 * S, _hex(cream))
    big_w = _tracked_width("AURORA", big, 0.06)
    sw = _tracked_width("SPECIALTY COFFEE", small, 0.32)
    tr = 0.32 + (big_w - sw) / (small.size * 15)  # justify under the wordmark
    _tracked_text(text, (tx, horizon + 8 * S), "SPECIALTY COFFEE", small, _hex(amber), tr)
    img.alpha_composite(text)
    _finish_logo(img, profile / "logo.png")


def make_qinglan_logo(profile: Path) -> None:
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    S = 4
    W, H = 512 * S, 220 * S
    img = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    jade, deep, light, mist = "#3E9C82", "#1D5C55", "#9FD3BE", "#EAF5EF"
    cx, cy, R = 104 * S, 110 * S, 84 * S

    # ink-wash ring: a circle minus an offset circle -> a brush stroke thick at the lower left
    ring = Image.new("L", (W, H), 0)
    d = ImageDraw.Draw(ring)
    d.ellipse([cx - R, cy - R, cx + R, cy + R], fill=255)
    ri, off = R - 9 * S, (4 * S, -5 * S)
    d.ellipse([cx - ri + off[0], cy - ri + off[1], cx + ri + off[0], cy + ri + off[1]], fill=0)
    ring = ring.filter(ImageFilter.GaussianBlur(0.6 * S))
    _paste_masked(img, _vgradient((W, H), "#5DB89C", "#1D5C55", cy - R, cy + R), ring)

    # mist-jade disc inside the ring
    disc = Image.new("L", (W, H), 0)
    rd = R - 17 * S
    ImageDraw.Draw(disc).ellipse([cx - rd, cy - rd, cx + rd, cy + rd], fill=255)
    _paste_masked(img, _hex(mist), disc)

    # tea leaf: intersection of two circles (a vesica), tilted, with a midrib and veins
    L = 108 * S  # leaf length
    rr = L * 0.62
    leaf = Image.new("L", (W, H), 0)
    a_ = Image.new("L", (W, H), 0)
    b_ = Image.new("L", (W, H), 0)
    dx = np.sqrt(rr * rr - (L / 2) ** 2)
    ImageDraw.Draw(a_).ellipse([cx - dx - rr, cy - rr, cx - dx + rr, cy + rr], fill=255)
    ImageDraw.Draw(b_).ellipse([cx + dx - rr, cy - rr, cx + dx + rr, cy + rr], fill=255)
    leaf = Image.fromarray(np.minimum(np.asarray(a_), np.asarray(b_)))
    veins = Image.new("L", (W, H), 0)
    dv = ImageDraw.Draw(veins)
    dv.line([(cx, cy - L * 0.40), (cx, cy + L * 0.46)], fill=255, width=4 * S)
    for t in (-0.22, -0.02, 0.18):
        y0 = cy + t * L
        for sgn in (-1, 1):
            dv.line([(cx, y0), (cx + sgn * 0.17 * L, y0 - 0.13 * L)], fill=255, width=3 * S)
    stem = Image.new("L", (W, H), 0)
    ImageDraw.Draw(stem).line([(cx, cy + L * 0.44), (cx + 3 * S, cy + L * 0.56)], fill=255, width=5 * S)
    rot = 32
    leaf, veins, stem = (m.rotate(rot, resample=Image.BICUBIC, center=(cx, cy)) for m in (leaf, veins, stem))
    veins = Image.fromarray(np.minimum(np.asarray(veins), np.asarray(leaf.filter(ImageFilter.MinFilter(5 * S + 1)))))
    _paste_masked(img, _hex(deep), stem)
    _paste_masked(img, _vgradient((W, H), "#6CC3A4", "#237A66", cy - L // 2, cy + L // 2), leaf)
    _paste_masked(img, _hex(mist, 215), veins)

    # wordmark: 青岚 + QINGLAN TEA
    font_path = profile / QINGLAN_FONT
    big = ImageFont.truetype(str(font_path), 92 * S)
    small = ImageFont.truetype(str(font_path), 19 * S)
    tx = 214 * S
    text = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    bb = big.getbbox("青岚")
    top = cy - 58 * S
    _tracked_text(text, (tx - bb[0], top - bb[1]), "青岚", big, _hex(deep), 0.08, 2 * S, _hex(mist))
    big_w = _tracked_width("青岚", big, 0.08) - bb[0]
    label = "QINGLAN TEA"
    sw = _tracked_width(label, small, 0.3)
    tr = 0.3 + (big_w - sw) / (small.size * (len(label) - 1))
    sb = small.getbbox(label)
    _tracked_text(text, (tx - sb[0], top + (bb[3] - bb[1]) + 16 * S - sb[1]), label, small, _hex(jade), tr)
    img.alpha_composite(text)
    _finish_logo(img, profile / "logo.png")


# ----------------------------------------------------------------------------------------------
# fonts
# ----------------------------------------------------------------------------------------------
def _find(root: Path, name: str) -> Path:
    for base in (root, root.parent.parent, root.parent.parent.parent):
        hits = sorted(base.rglob(name)) if base.is_dir() else []
        if hits:
            return hits[0]
    sys.exit(f"error: {name} not found under {root} -- see --help for how to extract the Noto packages")


def _find_doc(root: Path, package: str) -> Path:
    """The Debian machine-readable copyright file of ``package`` (``usr/share/doc/<package>/copyright``)."""
    for base in (root, root.parent.parent, root.parent.parent.parent):
        hits = sorted(p for p in base.rglob("copyright") if p.parent.name == package and p.parent.parent.name == "doc")
        if hits:
            return hits[0]
    sys.exit(f"error: usr/share/doc/{package}/copyright not found under {root}")


def _gb2312_chars() -> set[str]:
    chars = set()
    for hi in range(0xA1, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.add(bytes([hi, lo]).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    return chars


def _cjk_chars_from_profile(profile: Path) -> set[str]:
    files = [profile / "brand.toml"]
    for tdir in (profile / "templates", REPO / "templates"):
        if tdir.is_dir():
            files += sorted(p for p in tdir.rglob("*") if p.is_file() and p.suffix in {".toml", ".txt", ".md", ".j2", ".jinja"})
    chars: set[str] = set()
    for f in files:
        if f.is_file():
            text = f.read_text(encoding="utf-8", errors="ignore")
            chars |= {c for c in text if ord(c) > 0x2E7F}
    return chars


def _subset(font, unicodes: set[int], out: Path, features: list[str], hinting: bool) -> None:
    from fontTools import subset

    opts = subset.Options()
    opts.layout_features = features
    opts.name_IDs = ["*"]
    opts.name_languages = ["*"]
    opts.name_legacy = True
    opts.notdef_outline = True
    opts.glyph_names = False
    opts.hinting = hinting
    opts.recalc_timestamp = False
    sub = subset.Subsetter(options=opts)
    sub.populate(unicodes=sorted(unicodes))
    sub.subset(font)
    out.parent.mkdir(parents=True, exist_ok=True)
    font.save(str(out))


def _ofl_text(copyright_file: Path, font, extra_copyright: list[str]) -> str:
    """Pull the OFL 1.1 stanza out of a Debian machine-readable copyright file."""
    text = copyright_file.read_text(encoding="utf-8")
    m = re.search(r"^License: (?:OFL-1\.1|SIL-1\.1)\s*\n((?: .*\n?)+)", text, re.M)
    if not m:
        sys.exit(f"error: no OFL stanza in {copyright_file}")
    body = m.group(1)
    paras, cur = [], []
    for line in body.splitlines():
        line = line[1:] if line.startswith(" ") else line
        if line.strip() == ".":
            paras.append(cur)
            cur = []
        else:
            cur.append(line)
    paras.append(cur)
    out_paras = []
    for p in paras:
        joined = " ".join(s.strip() for s in p if s.strip())
        if not joined:
            continue
        if len([s for s in p if s.strip()]) == 1 or set(joined) <= set("- ") or joined.startswith("-----"):
            out_paras.append("\n".join(s.strip() for s in p if s.strip()))
        else:
            out_paras.append(textwrap.fill(joined, 72))
    lic = "\n\n".join(out_paras)
    if "SIL OPEN FONT LICENSE Version 1.1" not in lic:
        lic = ("-----------------------------------------------------------\n"
               "SIL OPEN FONT LICENSE Version 1.1 - 26 February 2007\n"
               "-----------------------------------------------------------\n\n") + lic
    name = font["name"]
    head = [name.getDebugName(0) or ""]
    head += extra_copyright
    tm = name.getDebugName(7)
    if tm:
        head.append(tm)
    head.append("")
    head.append(textwrap.fill(name.getDebugName(13) or "", 72))
    head.append("")
    head.append("This Font Software is licensed under the SIL Open Font License, Version 1.1.")
    head.append("This license is copied below, and is also available with a FAQ at:")
    head.append("https://openfontlicense.org")
    return "\n".join(head) + "\n\n" + lic.rstrip() + "\n"


def _debian_copyright_lines(copyright_file: Path) -> list[str]:
    text = copyright_file.read_text(encoding="utf-8")
    m = re.search(r"^Files: \*\s*\nCopyright:(.*?)\n(?=License)", text, re.M | re.S)
    if not m:
        return []
    lines = [s.strip() for s in m.group(1).splitlines() if s.strip() and not s.startswith("License")]
    return [f"Copyright (c) {s}" for s in lines if not s.startswith("License")]


def _debian_version(pkg_dir: Path) -> str:
    chg = sorted(pkg_dir.glob("changelog.Debian*"))
    if chg:
        import gzip

        raw = chg[0].read_bytes()
        first = (gzip.decompress(raw) if chg[0].suffix == ".gz" else raw).decode("utf-8", "ignore").splitlines()[0]
        m = re.search(r"\((.*?)\)", first)
        if m:
            return m.group(1)
    return "unknown"


def _check_cmap(path: Path, sample: str) -> tuple[int, int, list[str]]:
    from fontTools.ttLib import TTFont

    f = TTFont(str(path))
    cmap = f.getBestCmap()
    missing = [c for c in sample if not c.isspace() and ord(c) not in cmap]
    return len(f.getGlyphOrder()), len(cmap), missing


def make_fonts(src: Path) -> dict:
    from fontTools.ttLib import TTCollection, TTFont

    info = {}
    serif = _find(src, "NotoSerif-Bold.ttf")
    ttc = _find(src, "NotoSansCJK-Bold.ttc")
    core_cr = _find_doc(src, "fonts-noto-core")
    cjk_cr = _find_doc(src, "fonts-noto-cjk")

    # --- aurora: Noto Serif Bold, Latin subset, kerning/GPOS kept
    latin = set(range(0x20, 0x7F)) | set(range(0xA0, 0x100)) | set(range(0x100, 0x180))
    latin |= set(range(0x2000, 0x2070)) | set(range(0x20A0, 0x20C1))
    font = TTFont(str(serif), recalcTimestamp=False)
    serif_version = font["name"].getDebugName(5).split(";")[0]
    out = AURORA / AURORA_FONT
    _subset(font, latin, out, ["*"], hinting=True)
    sample = "AURORA Coffee — “Fresh” café €4.50 £3 ¥500 ŁÓDŹ naïve…"
    g, c, miss = _check_cmap(out, sample)
    assert not miss, f"aurora font is missing {miss}"
    info["aurora"] = dict(glyphs=g, cmap=c, src=serif, version=serif_version)
    log(f"  wrote {out.relative_to(REPO)}: {g} glyphs, {c} code points")
    ofl = _ofl_text(core_cr, TTFont(str(serif)), _debian_copyright_lines(core_cr))
    (AURORA / "fonts" / "OFL.txt").write_text(ofl, encoding="utf-8")

    # --- qinglan: Noto Sans CJK SC Bold (the TTC face named "Noto Sans CJK SC")
    coll = TTCollection(str(ttc), recalcTimestamp=False)
    idx = next(i for i, f in enumerate(coll.fonts) if f["name"].getDebugName(1) == "Noto Sans CJK SC")
    font = TTFont(str(ttc), fontNumber=idx, recalcTimestamp=False)
    cjk_version = font["name"].getDebugName(5).split(";")[0]
    sample = "青岚茶，清香一夏！AI生成 人工智能生成"
    chars = set(range(0x20, 0x7F)) | set(range(0xA0, 0x100)) | set(range(0x2000, 0x2070))
    chars |= set(range(0x3000, 0x3040)) | set(range(0xFF00, 0xFFF0))
    chars |= {ord(c) for c in _gb2312_chars()}
    chars |= {ord(c) for c in _cjk_chars_from_profile(QINGLAN)}
    chars |= {ord(c) for c in "青岚茶 Qinglan Tea" + sample}
    out = QINGLAN / QINGLAN_FONT
    # no 'locl': this is the SC face already, and locl would pull in the JP/KR/TC glyph variants
    feats = ["ccmp", "kern", "palt", "halt", "vert", "vrt2", "vkrn", "vpal", "fwid", "hwid", "pwid",
             "liga", "calt", "mark", "mkmk"]
    _subset(font, chars, out, feats, hinting=True)
    g, c, miss = _check_cmap(out, sample)
    assert not miss, f"qinglan font is missing {miss}"
    size = out.stat().st_size
    assert size < 4.5e6, f"qinglan font is {size} bytes"
    info["qinglan"] = dict(glyphs=g, cmap=c, src=ttc, index=idx, version=cjk_version)
    log(f"  wrote {out.relative_to(REPO)}: TTC face #{idx}, {g} glyphs, {c} code points, {size/1e6:.2f} MB")
    ofl = _ofl_text(cjk_cr, font, _debian_copyright_lines(cjk_cr))
    (QINGLAN / "fonts" / "OFL.txt").write_text(ofl, encoding="utf-8")

    # --- fonts/README.md
    core_ver = _debian_version(core_cr.parent)
    cjk_ver = _debian_version(cjk_cr.parent)
    (AURORA / "fonts" / "README.md").write_text(textwrap.dedent(f"""\
        # Aurora Coffee brand font

        `NotoSerif-Bold.ttf` is a **subset** of *Noto Serif Bold* ({info['aurora']['version']}),
        taken from Debian's `fonts-noto-core` package (version {core_ver}, file
        `usr/share/fonts/truetype/noto/NotoSerif-Bold.ttf`), upstream <https://github.com/notofonts/latin-greek-cyrillic>.

        Subset with `fontTools.subset` by `brand_profiles/make_assets.py` to Basic Latin, Latin-1 Supplement,
        Latin Extended-A, General Punctuation and Currency Symbols (€ £ ¥ …): {info['aurora']['glyphs']} glyphs,
        {info['aurora']['cmap']} code points. All OpenType layout features (kerning/GPOS, ligatures) and the
        TrueType hinting are kept; the name table is unchanged (Noto has no Reserved Font Name).

        Licence: SIL Open Font License 1.1 -- see `OFL.txt` (copyright Google LLC). The OFL covers these font
        files only, not the rest of the repository.
        """), encoding="utf-8")
    (QINGLAN / "fonts" / "README.md").write_text(textwrap.dedent(f"""\
        # 青岚茶 Qinglan Tea brand font

        `NotoSansSC-Bold.otf` is a **subset** of *Noto Sans CJK SC Bold* ({info['qinglan']['version']}),
        face #{idx} ("Noto Sans CJK SC") of `NotoSansCJK-Bold.ttc` from Debian's `fonts-noto-cjk` package
        (version {cjk_ver}), upstream <https://github.com/notofonts/noto-cjk>.

        Subset with `fontTools.subset` by `brand_profiles/make_assets.py` to ASCII, Latin-1, General Punctuation,
        CJK Symbols and Punctuation (U+3000-303F), Halfwidth and Fullwidth Forms (U+FF00-FFEF), every character
        of GB2312 (6763 hanzi + symbols), and any other Chinese characters used in this profile's `brand.toml`
        and templates: {info['qinglan']['glyphs']} glyphs, {info['qinglan']['cmap']} code points (CFF outlines).
        Layout features kept: {', '.join(feats)}.
        Characters outside that set (rare hanzi, Traditional-only forms) are **not** in this file; re-run
        the script with `--font-source` after adding text to the profile.

        Licence: SIL Open Font License 1.1 -- see `OFL.txt` (copyright Adobe, Google). The OFL covers these font
        files only, not the rest of the repository.
        """), encoding="utf-8")
    return info


# ----------------------------------------------------------------------------------------------
# music
# ----------------------------------------------------------------------------------------------
def midi_hz(n: float) -> float:
    return 440.0 * 2.0 ** ((n - 69) / 12.0)


def note(name: str) -> int:
    names = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
    m = re.fullmatch(r"([A-G])([#b]?)(-?\d)", name)
    n = names[m.group(1)] + {"#": 1, "b": -1, "": 0}[m.group(2)]
    return 12 * (int(m.group(3)) + 1) + n


def adsr(n: int, a: float, d: float, s: float, r: float, hold: float) -> np.ndarray:
    """Attack/decay/sustain/release envelope, raised-cosine segments (click-free)."""
    t = np.arange(n) / SR
    env = np.empty(n)
    att = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / a, 0, 1))
    dec = s + (1 - s) * np.exp(-np.maximum(t - a, 0) / d)
    env = np.where(t < a, att, dec)
    rel = np.clip((t - hold) / r, 0, 1)
    return env * (0.5 + 0.5 * np.cos(np.pi * rel))


def pan(x: np.ndarray, p: float) -> np.ndarray:
    """Constant-power pan, p in [-1, 1] -> (n, 2)."""
    th = (p + 1) * np.pi / 4
    return np.stack([x * np.cos(th), x * np.sin(th)], axis=1)


def reverb_ir(seconds: float, tau: float, seed: int, damp_hz: float = 5000.0) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    ir = rng.standard_normal((n, 2)) * np.exp(-t / tau)[:, None]
    sos = butter(2, damp_hz, fs=SR, output="sos")
    ir = sosfilt(sos, ir, axis=0)
    pre = int(0.012 * SR)
    ir = np.concatenate([np.zeros((pre, 2)), ir])
    ir /= np.sqrt((ir ** 2).sum(axis=0, keepdims=True))
    return ir


def convolve_stereo(x: np.ndarray, ir: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    mono_or = x if x.ndim == 2 else np.stack([x, x], 1)
    return np.stack([fftconvolve(mono_or[:, c], ir[:, c])[: len(x)] for c in range(2)], axis=1)


def wrap_loop(buf: np.ndarray, loop_n: int) -> np.ndarray:
    out = buf[:loop_n].copy()
    tail = buf[loop_n:]
    while len(tail):
        k = min(len(tail), loop_n)
        out[:k] += tail[:k]
        tail = tail[k:]
    return out


def ep_note(f: float, dur: float, vel: float, t0: float) -> np.ndarray:
    """Electric-piano-like FM tone: 1:1 FM with a decaying index + a soft tine, soft attack."""
    n = int((dur + 0.6) * SR)
    t = np.arange(n) / SR
    ta = t + t0
    wob = 1.0 + 0.0025 * np.sin(2 * np.pi * 0.45 * ta)           # tape wow
    ph = 2 * np.pi * f * np.cumsum(wob) / SR
    index = 1.6 * vel * np.exp(-t / 0.35) + 0.25
    y = np.sin(ph + index * np.sin(ph))
    y += 0.10 * vel * np.sin(2 * np.pi * 7.0 * f * t) * np.exp(-t / 0.06) * (7 * f < 9000)
    y += 0.22 * np.sin(2 * ph) * np.exp(-t / 0.5)
    env = adsr(n, 0.012, 1.6, 0.25, 0.35, dur)
    return y * env * vel


def bass_note(f: float, dur: float, vel: float) -> np.ndarray:
    n = int((dur + 0.2) * SR)
    t = np.arange(n) / SR
    ph = 2 * np.pi * f * t
    y = np.sin(ph) + 0.25 * np.sin(2 * ph) * np.exp(-t / 0.25) + 0.08 * np.sin(3 * ph) * np.exp(-t / 0.1)
    return y * adsr(n, 0.008, 0.9, 0.55, 0.12, dur) * vel


def kick(vel: float) -> np.ndarray:
    n = int(0.35 * SR)
    t = np.arange(n) / SR
    f = 48 + 70 * np.exp(-t / 0.03)
    y = np.sin(2 * np.pi * np.cumsum(f) / SR) * np.exp(-t / 0.12)
    y *= 0.5 - 0.5 * np.cos(np.pi * np.clip(t / 0.003, 0, 1))
    return y * vel


def brush_hat(rng, vel: float, length: float) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    n = int(length * SR)
    t = np.arange(n) / SR
    noise = rng.standard_normal(n)
    sos = butter(2, [5000, 11000], btype="bandpass", fs=SR, output="sos")
    y = sosfilt(sos, noise)
    env = (0.5 - 0.5 * np.cos(np.pi * np.clip(t / 0.006, 0, 1))) * np.exp(-t / (length / 4))
    env *= 0.5 + 0.5 * np.cos(np.pi * np.clip((t - 0.8 * length) / (0.2 * length), 0, 1))
    return y * env * vel


def add(buf: np.ndarray, x: np.ndarray, start: float) -> None:
    i = max(0, int(round(start * SR)))
    k = min(len(x), len(buf) - i)
    if k > 0:
        buf[i : i + k] += x[:k]


def synth_morning_roast() -> np.ndarray:
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(84)
    bpm = 84.0
    beat = 60.0 / bpm
    bars = 4
    loop_s = bars * 4 * beat                      # 11.43 s
    total = loop_s + 3.0
    n = int(total * SR)
    loop_n = int(round(loop_s * SR))
    keys = np.zeros((n, 2))
    bass = np.zeros(n)
    drums = np.zeros((n, 2))

    # ii-V-I-vi in C: Dm9 | G13 | Cmaj9 | Am9   (voice-led, close voicings around middle C)
    chords = [
        (["F3", "A3", "C4", "E4"], "D2"),
        (["F3", "B3", "E4", "A4"], "G2"),
        (["E3", "G3", "B3", "D4"], "C2"),
        (["E3", "G3", "C4", "B3"], "A1"),
    ]
    bass_lines = [  # (beat, note, beats long, velocity)
        [(0, "D2", 1.6, 1.0), (2.5, "A2", 0.9, 0.8), (3.5, "C3", 0.45, 0.6)],
        [(0, "G2", 1.6, 1.0), (2.5, "D2", 0.9, 0.8), (3.5, "F2", 0.45, 0.6)],
        [(0, "C2", 1.6, 1.0), (2.5, "G2", 0.9, 0.8), (3.5, "B2", 0.45, 0.6)],
        [(0, "A1", 1.6, 1.0), (2.5, "E2", 0.9, 0.8), (3.5, "C#2", 0.45, 0.6)],
    ]
    for b, ((tones, _root), bl) in enumerate(zip(chords, bass_lines)):
        t_bar = b * 4 * beat
        # main chord, gently strummed upward; a softer re-voice on the "and" of 3
        for k, nm in enumerate(sorted(tones, key=note)):
            f = midi_hz(note(nm))
            x = ep_note(f, 2.3 * beat, 0.55 + 0.05 * rng.random(), t_bar)
            keys_p = pan(x, -0.25 + 0.5 * k / 3)
            add(keys, keys_p, t_bar + 0.012 * k + 0.004 * rng.random())
            y = ep_note(f, 1.2 * beat, 0.32 + 0.04 * rng.random(), t_bar + 2.5 * beat)
            add(keys, pan(y, 0.25 - 0.5 * k / 3), t_bar + 2.5 * beat + 0.01 * k + 0.02)
        for bt, nm, ln, v in bl:
            add(bass, bass_note(midi_hz(note(nm)), ln * beat, v), t_bar + bt * beat + 0.01)
        for bt, v in ((0, 1.0), (2.5, 0.7)):
            add(drums, pan(kick(v), 0.0), t_bar + bt * beat)
        # brushed hats: swung 8ths, long "swish" on 2 and 4
        for e in range(8):
            swing = 0.0 if e % 2 == 0 else 0.16 * beat
            start = t_bar + e * beat / 2 + swing + 0.004 * rng.standard_normal()
            v = (0.55 if e % 2 == 0 else 0.35) * (0.9 + 0.2 * rng.random())
            length = 0.42 if e in (2, 6) else 0.13
            add(drums, pan(brush_hat(rng, v * (1.2 if e in (2, 6) else 1.0), length), 0.3), start)

    # auto-pan tremolo on the keys (suitcase-piano style) and a warm low-pass
    t = np.arange(n) / SR
    trem = 0.5 + 0.5 * np.sin(2 * np.pi * (4 * bpm / 60 / 4) * t)
    keys = keys * np.stack([0.78 + 0.22 * trem, 1.0 - 0.22 * trem], 1)
    keys = sosfilt(butter(2, 3800, fs=SR, output="sos"), keys, axis=0)
    bass = sosfilt(butter(2, 700, fs=SR, output="sos"), bass)
    mix = 0.55 * keys + pan(0.75 * bass, 0.0) + 0.22 * drums
    mix += 0.18 * convolve_stereo(0.55 * keys + 0.15 * drums, reverb_ir(2.2, 0.45, seed=7, damp_hz=4000))
    # a little vinyl-ish hiss, very low
    hiss = sosfilt(butter(2, [2000, 9000], btype="bandpass", fs=SR, output="sos"), rng.standard_normal((n, 2)), axis=0)
    mix += 0.0025 * hiss
    mix = sosfilt(butter(1, 30, btype="highpass", fs=SR, output="sos"), mix, axis=0)
    return wrap_loop(mix, loop_n)


def clap(rng, vel: float) -> np.ndarray:
    """Hand clap: three quick band-passed noise bursts and a short tail."""
    from scipy.signal import butter, sosfilt

    n = int(0.25 * SR)
    t = np.arange(n) / SR
    env = sum(np.exp(-np.maximum(t - d, 0) / 0.006) * (t >= d) for d in (0.0, 0.011, 0.022))
    env = env + 0.6 * np.exp(-np.maximum(t - 0.03, 0) / 0.06) * (t >= 0.03)
    y = sosfilt(butter(2, [900, 5200], btype="bandpass", fs=SR, output="sos"), rng.standard_normal(n))
    return y * env * vel


def synth_bright_brew() -> np.ndarray:
    """Upbeat 124 bpm loop for aurora-coffee's "upbeat" mood: four-on-the-floor kick, claps on 2 and 4,
    off-beat hats, an FM-piano arpeggio over I-V-vi-IV in C and an off-beat bass. 4 bars, 7.74 s."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(124)
    bpm = 124.0
    beat = 60.0 / bpm
    loop_s = 4 * 4 * beat
    n = int((loop_s + 2.0) * SR)
    loop_n = int(round(loop_s * SR))
    keys = np.zeros((n, 2))
    bass = np.zeros(n)
    drums = np.zeros((n, 2))
    chords = [["C4", "E4", "G4", "C5"], ["B3", "D4", "G4", "B4"], ["C4", "E4", "A4", "C5"], ["C4", "F4", "A4", "C5"]]
    roots = ["C2", "G1", "A1", "F1"]
    for b, (tones, root) in enumerate(zip(chords, roots)):
        t_bar = b * 4 * beat
        for step in range(8):  # 8th-note arpeggio, up and back
            nm = tones[[0, 1, 2, 3, 2, 1, 2, 3][step]]
            x = ep_note(midi_hz(note(nm)), 0.45 * beat, 0.42 + 0.06 * (step % 2 == 0) + 0.03 * rng.random(), t_bar)
            add(keys, pan(x, -0.35 + 0.7 * (step % 4) / 3), t_bar + step * beat / 2 + 0.003 * rng.random())
        for bt in range(4):
            add(drums, pan(kick(1.0), 0.0), t_bar + bt * beat)
            add(bass, bass_note(midi_hz(note(root)), 0.4 * beat, 0.9), t_bar + (bt + 0.5) * beat)
            add(drums, pan(brush_hat(rng, 0.5, 0.09), 0.25), t_bar + (bt + 0.5) * beat)
        for bt in (1, 3):
            add(drums, pan(clap(rng, 0.45), -0.1), t_bar + bt * beat)
    keys = sosfilt(butter(2, 5200, fs=SR, output="sos"), keys, axis=0)
    bass = sosfilt(butter(2, 500, fs=SR, output="sos"), bass)
    mix = 0.5 * keys + pan(0.7 * bass, 0.0) + 0.35 * drums
    mix += 0.12 * convolve_stereo(0.5 * keys + 0.1 * drums, reverb_ir(1.2, 0.25, seed=5, damp_hz=5000))
    mix = sosfilt(butter(1, 30, btype="highpass", fs=SR, output="sos"), mix, axis=0)
    return wrap_loop(mix, loop_n)


def karplus_strong(f: float, dur: float, vel: float, rng, bright: float = 0.6, decay: float = 0.996) -> np.ndarray:
    """Plucked string: KS with a fractional-delay (linear interpolation) loop, vectorised per period."""
    from scipy.signal import butter, sosfilt

    n = int(dur * SR)
    P = SR / f                         # period in samples; loop = z^-D * avg * interp
    D = int(np.floor(P - 0.5 - 1e-9))
    frac = P - 0.5 - D                 # interpolation fraction in [0, 1)
    # taps of (0.5 + 0.5 z^-1) * ((1-frac) + frac z^-1)
    c0, c1, c2 = 0.5 * (1 - frac), 0.5 * (1 - frac) + 0.5 * frac, 0.5 * frac
    g = decay ** (440.0 / f)           # similar decay time across pitches
    excite = rng.uniform(-1, 1, D + 2)
    excite = sosfilt(butter(2, min(0.45 * SR, 1800 + bright * 5000), fs=SR, output="sos"), excite)
    # pluck position comb: a guzheng is plucked near the bridge -> bright but not harsh
    pos = max(1, int(D * 0.18))
    excite[pos:] -= 0.6 * excite[:-pos]
    excite -= excite.mean()
    y = np.zeros(n + D + 2)
    y[: D + 2] = excite
    i = D + 2
    while i < len(y):
        k = min(D, len(y) - i)
        y[i : i + k] = g * (c0 * y[i - D : i - D + k] + c1 * y[i - D - 1 : i - D - 1 + k] + c2 * y[i - D - 2 : i - D - 2 + k])
        i += k
    y = y[D + 2 :][:n]
    t = np.arange(n) / SR
    fade = 0.5 + 0.5 * np.cos(np.pi * np.clip((t - (dur - 0.15)) / 0.15, 0, 1))
    att = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / 0.003, 0, 1))
    return y * fade * att * vel


def vibrato(x: np.ndarray, cents: float, rate: float, delay: float) -> np.ndarray:
    """Late vibrato (guzheng 'rou xian') by time-warping the note."""
    t = np.arange(len(x)) / SR
    ramp = np.clip((t - delay) / 0.3, 0, 1)
    depth = (2 ** (cents / 1200) - 1) / (2 * np.pi * rate)
    warped = t + depth * ramp * np.sin(2 * np.pi * rate * t)
    return np.interp(warped, t, x)


def pad_voice(f: float, dur: float, vel: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int((dur + 1.4) * SR)
    t = np.arange(n) / SR
    y = np.zeros(n)
    for det in (-7.0, 0.0, 6.0):
        ff = f * 2 ** (det / 1200)
        ph0 = rng.uniform(0, 2 * np.pi)
        for h, a in ((1, 1.0), (2, 0.35), (3, 0.16), (4, 0.07), (5, 0.04)):
            if h * ff < 8000:
                y += a * np.sin(2 * np.pi * h * ff * t + h * ph0)
    y /= 3
    return y * adsr(n, 0.9, 2.0, 0.8, 1.3, dur) * vel


def synth_qinglan_breeze() -> np.ndarray:
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(2024)
    bpm = 72.0
    beat = 60.0 / bpm
    loop_s = 12 * beat                # 3 bars of 4/4 = 10 s
    n = int((loop_s + 4.0) * SR)
    loop_n = int(round(loop_s * SR))
    pluck = np.zeros((n, 2))
    pad = np.zeros((n, 2))

    # D gong pentatonic: D E F# A B
    # opening glissando (the guzheng's signature sweep up the strings), then the melody
    gl = ["A3", "B3", "D4", "E4", "F#4", "A4", "B4", "D5"]
    for k, nm in enumerate(gl):
        x = karplus_strong(midi_hz(note(nm)), 1.6, 0.35 + 0.04 * k, rng, bright=0.5)
        add(pluck, pan(x, -0.5 + k / 8), 0.045 * k)
    melody = [  # (beat, note, beats, velocity)
        (0.5, "A5", 1.0, 0.9), (1.5, "F#5", 0.5, 0.7), (2.0, "E5", 0.5, 0.7), (2.5, "D5", 1.5, 0.85),
        (4.0, "B4", 0.5, 0.75), (4.5, "D5", 0.5, 0.7), (5.0, "E5", 1.0, 0.85), (6.0, "F#5", 0.5, 0.75),
        (6.5, "A5", 0.5, 0.8), (7.0, "B5", 1.0, 0.9),
        (8.0, "A5", 0.75, 0.85), (8.75, "F#5", 0.25, 0.6), (9.0, "E5", 0.5, 0.75), (9.5, "D5", 0.5, 0.7),
        (10.0, "E5", 0.5, 0.75), (10.5, "B4", 0.5, 0.7), (11.0, "A4", 1.0, 0.85),
    ]
    for bt, nm, ln, v in melody:
        f = midi_hz(note(nm))
        dur = max(1.2, ln * beat + 0.9)
        x = karplus_strong(f, dur, v, rng, bright=0.7)
        if ln >= 1.0:
            x = vibrato(x, 22, 5.5, 0.25)
        start = bt * beat + 0.006 * rng.standard_normal()
        add(pluck, pan(x, 0.15 * np.sin(bt)), max(0.0, start))
        # octave-below doubling, quiet: the low strings ringing in sympathy
        if ln >= 1.0:
            y = karplus_strong(f / 2, dur, 0.3 * v, rng, bright=0.3)
            add(pluck, pan(y, -0.3), max(0.0, start + 0.01))

    # soft pad under it, all chord tones inside the pentatonic
    chords = [
        (0, 4, ["D3", "A3", "E4", "F#4", "B4"]),         # D6/9
        (4, 4, ["B2", "F#3", "D4", "A4", "E4"]),         # Bm7(add11)
        (8, 2, ["E3", "B3", "D4", "A4"]),                # Esus4(7)
        (10, 2, ["A2", "E3", "B3", "E4", "A4"]),         # Asus2
    ]
    for ci, (bt, ln, tones) in enumerate(chords):
        for k, nm in enumerate(tones):
            x = pad_voice(midi_hz(note(nm)), ln * beat, 0.16, seed=100 * ci + k)
            add(pad, pan(x, -0.6 + 1.2 * k / (len(tones) - 1)), bt * beat)
    drone = pad_voice(midi_hz(note("D2")), loop_s - 0.5, 0.16, seed=999)
    add(pad, pan(drone, 0.0), 0.0)

    pad = sosfilt(butter(2, 2200, fs=SR, output="sos"), pad, axis=0)
    mix = 0.62 * pluck + 0.55 * pad
    mix += 0.28 * convolve_stereo(0.6 * pluck + 0.3 * pad, reverb_ir(3.5, 0.75, seed=11, damp_hz=6000))
    mix = sosfilt(butter(2, 40, btype="highpass", fs=SR, output="sos"), mix, axis=0)
    mix = sosfilt(butter(4, 14000, fs=SR, output="sos"), mix, axis=0)   # headroom for the AAC encoder
    return wrap_loop(mix, loop_n)


def _loudness(x: np.ndarray) -> float:
    import pyloudnorm

    return float(pyloudnorm.Meter(SR).integrated_loudness(x))


def true_peak_db(x: np.ndarray) -> float:
    from scipy.signal import resample_poly

    up = resample_poly(x, 4, 1, axis=0)
    return float(20 * np.log10(np.max(np.abs(up)) + 1e-12))


def limiter(x: np.ndarray, ceiling_db: float, look_ms: float = 4.0, release_ms: float = 120.0) -> np.ndarray:
    """Look-ahead brick-wall limiter (min-filter + release + boxcar smoothing), zero latency by construction."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d
    from scipy.signal import lfilter

    ceil = 10 ** (ceiling_db / 20)
    peak = np.max(np.abs(x), axis=1)
    g = np.minimum(1.0, ceil / np.maximum(peak, 1e-9))
    L = max(3, int(look_ms * SR / 1000))
    g = minimum_filter1d(g, 2 * L + 1, mode="wrap")
    # release: gain recovers with a one-pole filter, but never above the required gain
    a = np.exp(-1.0 / (release_ms * SR / 1000))
    rel = 1.0 - lfilter([1 - a], [1, -a], 1.0 - g)   # smoothed (lags behind dips)
    g = np.minimum(g, rel)
    g = uniform_filter1d(g, L, mode="wrap")
    return x * g[:, None]


def master(x: np.ndarray, target_lufs: float, loud: bool) -> np.ndarray:
    if not loud:
        y = x * 10 ** ((target_lufs - _loudness(x)) / 20)
        tp = true_peak_db(y)
        assert tp < -3, tp
        return y
    # loud: gentle saturation + limiter, gain searched to hit the target after limiting
    x = x * 10 ** ((-18 - _loudness(x)) / 20)
    ceiling = -1.0   # leaves room for the AAC encoder's overshoot; decoded peaks land just under 0 dBFS

    def chain(gain_db: float) -> np.ndarray:
        y = x * 10 ** (gain_db / 20)
        y = np.tanh(y * 0.6) / 0.6                  # gentle saturation glues the plucks (limiter sets the ceiling)
        return limiter(y, ceiling, look_ms=6.0, release_ms=200.0)

    lo, hi = 0.0, 24.0
    for _ in range(18):
        mid = 0.5 * (lo + hi)
        if _loudness(chain(mid)) < target_lufs:
            lo = mid
        else:
            hi = mid
    y = chain(0.5 * (lo + hi))
    tp = true_peak_db(y)
    if tp > ceiling + 0.4:                          # inter-sample overs: trim
        y *= 10 ** ((ceiling + 0.4 - tp) / 20)
    return y


def encode_m4a(x: np.ndarray, path: Path) -> None:
    import imageio_ffmpeg

    ff = imageio_ffmpeg.get_ffmpeg_exe()
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ff, "-hide_banner", "-loglevel", "error", "-y", "-f", "f32le", "-ar", str(SR), "-ac", "2", "-i", "pipe:0",
           "-c:a", "aac", "-b:a", "160k", "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact",
           "-movflags", "+faststart", str(path)]
    subprocess.run(cmd, input=np.ascontiguousarray(x, dtype="<f4").tobytes(), check=True)


def decode(path: Path) -> np.ndarray:
    import imageio_ffmpeg

    ff = imageio_ffmpeg.get_ffmpeg_exe()
    out = subprocess.run([ff, "-hide_banner", "-loglevel", "error", "-i", str(path), "-f", "f32le", "-ac", "2",
                          "-ar", str(SR), "pipe:1"], check=True, capture_output=True).stdout
    return np.frombuffer(out, "<f4").reshape(-1, 2).astype(np.float64)


def make_music(profile: Path, name: str, synth, target: float, loud: bool, readme: bool = True) -> dict:
    x = synth()
    y = master(x, target, loud)
    path = profile / "music" / f"{name}.m4a"
    encode_m4a(y, path)
    d = decode(path)
    stats = dict(seconds=len(y) / SR, lufs_pcm=_loudness(y), tp_pcm=true_peak_db(y),
                 lufs=_loudness(d), tp=true_peak_db(d), sample_peak=float(20 * np.log10(np.abs(d).max())))
    log(f"  wrote {path.relative_to(REPO)}: {stats['seconds']:.2f} s, {stats['lufs']:.2f} LUFS integrated, "
        f"true peak {stats['tp']:.2f} dBTP, sample peak {stats['sample_peak']:.2f} dBFS "
        f"(pre-encode {stats['lufs_pcm']:.2f} LUFS / {stats['tp_pcm']:.2f} dBTP)")
    stats["name"], stats["target"] = name, target
    if not readme:
        return stats
    (profile / "music" / "README.md").write_text(textwrap.dedent(f"""\
        # Music

        `{name}.m4a` was synthesised by `brand_profiles/make_assets.py` (numpy oscillators, FM, Karplus-Strong
        and filtered noise; no samples or recordings of any kind) and encoded to AAC 160 kb/s, stereo, 48 kHz.
        It is a seamless loop of {stats['seconds']:.2f} s, mastered to about {target:g} LUFS integrated.

        Licence: CC0 1.0 (public domain dedication) / the same licence as this repository -- use it freely.
        """), encoding="utf-8")
    return stats


def write_music_readme(profile: Path, tracks: list[tuple[dict, str, int]]) -> None:
    """``music/README.md`` for a profile with several tracks: ``(stats, mood, bpm)`` per track."""
    rows = "\n".join(
        f"| `{st['name']}.m4a` | {mood} | {bpm} | {st['seconds']:.2f} s | about {st['target']:g} LUFS |"
        for st, mood, bpm in tracks
    )
    (profile / "music" / "README.md").write_text(textwrap.dedent("""\
        # Music

        These tracks were synthesised by `brand_profiles/make_assets.py` (numpy oscillators, FM and filtered
        noise; no samples or recordings of any kind) and encoded to AAC 160 kb/s, stereo, 48 kHz. Each is a
        seamless loop; `brand.toml` tags them with a mood (`[audio] tracks`), which renders choose by.

        | file | mood | bpm | loop | mastered to |
        |---|---|---|---|---|
        """) + rows + textwrap.dedent("""

        Licence: CC0 1.0 (public domain dedication) / the same licence as this repository -- use it freely.
        """), encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# READMEs
# ----------------------------------------------------------------------------------------------
def write_readmes() -> None:
    (AURORA / "README.md").write_text(textwrap.dedent("""\
        # Aurora Coffee (demo brand profile)

        A warm, English-language specialty-coffee brand: sunrise, roasted amber, cream and espresso brown.
        Videos get a filmic warm grade, captions in a bold serif, and a mellow, quiet lo-fi bed.

        Palette: espresso `#2E1A10`, roast `#4A2A1A`, amber `#D98E32`, copper `#C4612A`, cream `#F4E4C6`.

        | asset | what | licence |
        |---|---|---|
        | `brand.toml` | the profile (written by hand) | repo licence |
        | `luts/aurora-warm.cube` | 33-pt 3D LUT: warm lift, soft filmic S-curve and shoulder, amber split-toned highlights, +12 % saturation | CC0 / repo licence |
        | `logo.png` | 512 px RGBA: sunrise arc with a coffee bean + "AURORA" wordmark | CC0 / repo licence |
        | `references/` | 12 procedural stills and 8 clips (17 frames) in the palette (gradient, soft discs, a light) with captions: `[style] references` | CC0 / repo licence |
        | `loras/aurora-film.safetensors` | LoRA (rank 16, both experts, 3600 steps each) for the offline `tiny` model, trained by `brandstudio lora train` on `references/` (`DEMO_LORA_TRAINING` in make_assets.py) | CC0 / repo licence |
        | `fonts/NotoSerif-Bold.ttf` | Noto Serif Bold, Latin subset (see `fonts/README.md`) | SIL OFL 1.1 (`fonts/OFL.txt`) |
        | `music/morning-roast.m4a` | mood "calm": 84 bpm lo-fi loop (electric piano, bass, brushes), ~-22 LUFS | CC0 / repo licence |
        | `music/bright-brew.m4a` | mood "upbeat": 124 bpm four-on-the-floor loop (FM-piano arpeggio, bass, claps), ~-16 LUFS | CC0 / repo licence |

        Everything except the font is generated by `brand_profiles/make_assets.py`; the font is a
        subset made by the same script from Debian's `fonts-noto-core` (`--font-source`).
        This is a fictional brand for demos and tests.
        """), encoding="utf-8")
    (QINGLAN / "README.md").write_text(textwrap.dedent("""\
        # 青岚茶 Qinglan Tea (demo brand profile)

        A fresh, Chinese-language jade-green tea brand: mountain mist, tea leaves and ink wash.
        Videos get a soft, cool ink-wash grade, captions in a bold Simplified-Chinese sans, and a bright,
        loud guzheng-style pentatonic bed.

        Palette: deep teal `#1D5C55`, jade `#3E9C82`, leaf `#6CC3A4`, celadon `#9FD3BE`, mist `#EAF5EF`.

        | asset | what | licence |
        |---|---|---|
        | `brand.toml` | the profile (written by hand) | repo licence |
        | `luts/qinglan-jade.cube` | 33-pt 3D LUT: lifted soft jade blacks, cool jade shadows, lower contrast, -20 % saturation, paper-white ceiling | CC0 / repo licence |
        | `logo.png` | 512 px RGBA: ink-wash ring with a tea leaf + "青岚" wordmark | CC0 / repo licence |
        | `references/` | 12 procedural stills and 8 clips (17 frames) in the palette (gradient, soft discs, a light) with captions: `[style] references` | CC0 / repo licence |
        | `loras/qinglan-ink.safetensors` | LoRA (rank 16, both experts, 3600 steps each) for the offline `tiny` model, trained by `brandstudio lora train` on `references/` (`DEMO_LORA_TRAINING` in make_assets.py) | CC0 / repo licence |
        | `fonts/NotoSansSC-Bold.otf` | Noto Sans CJK SC Bold, GB2312 subset (see `fonts/README.md`) | SIL OFL 1.1 (`fonts/OFL.txt`) |
        | `music/qinglan-breeze.m4a` | 72 bpm pentatonic plucked-string (Karplus-Strong) melody over a pad, ~-9 LUFS | CC0 / repo licence |

        Everything except the font is generated by `brand_profiles/make_assets.py`; the font is a
        subset made by the same script from Debian's `fonts-noto-cjk` (`--font-source`).
        This is a fictional brand for demos and tests.
        """), encoding="utf-8")
    log("  wrote README.md files")


# ----------------------------------------------------------------------------------------------
# Reference stills and the LoRAs trained on them
# ----------------------------------------------------------------------------------------------
#: the brand's palette with the words its captions use (the same swatches as [colour] palette)
AURORA_SWATCHES = {"#3B2A20": "espresso brown", "#8C5A3C": "roasted copper", "#C8A27A": "caramel",
                   "#F2E6D8": "cream", "#1F4E5F": "deep teal"}
QINGLAN_SWATCHES = {"#2E6B5E": "深青", "#7FB8A4": "翡翠", "#DCEBE3": "晨雾白", "#F5F1E6": "宣纸白",
                    "#3A3A3A": "墨色"}
REFERENCE_SIZE = (256, 144)  # the demo model's generation size
REFERENCE_COUNT = 12
REFERENCE_CLIPS = 8
REFERENCE_CLIP_FRAMES = 17  # 1 + 4k frames at 16 fps: five latent frames of the demo model
#: the clips' speed, times the demo model's own training footage. The LoRA damps motion as it
#: learns the palette (Qinglan's renders, palette p95 / QC motion: clips at 1x, 2400 steps 14.0 / 1.6,
#: 4800 steps 7.8 / 1.1; at 2x, 3600 steps 12.4 / 1.8), so the brand's clips move briskly
REFERENCE_CLIP_MOTION = 2.0
#: the Chinese words of the procedural scenes' motion directions (procedural.scene_caption's English)
_DIRECTIONS_ZH = {"left": "向左", "right": "向右", "up": "向上", "down": "向下"}


def _caption(scene, swatches: dict[str, str], chinese: bool) -> str:
    from brandstudio.generation.procedural import scene_caption, scene_direction

    if not chinese:
        return scene_caption(scene, swatches)
    names = list(swatches.values())
    shapes = "、".join(names[d.colour] for d in scene.discs)
    direction = scene_direction(scene)
    motion = f"{_DIRECTIONS_ZH[direction]}飘动" if direction else ""
    return f"{names[scene.start]}到{names[scene.end]}的柔和渐变，{shapes}色的柔光圆形{motion}，{names[scene.light]}的微光"


def write_reference_clip(path: Path, frames: np.ndarray, fps: int = 16) -> None:
    """H.264 in 4:4:4 at CRF 12: the brand's colours kept, not averaged by chroma subsampling."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "12"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def make_references(profile: Path, swatches: dict[str, str], *, seed: int, chinese: bool) -> None:
    """``references/``: the brand's reference stills and short clips (``[style] references``) with
    a caption each, the data ``lut fit`` and ``lora train`` learn the brand's look from. They are
    drawn like the demo model's own training footage (brandstudio.generation.procedural: a
    gradient, soft discs, a light), only in the brand's swatches, so the LoRA learns the palette.
    The clips move as that footage does: a LoRA trained on stills alone learns that nothing moves,
    and its renders come out still and flat (the QC frames check called them frozen)."""
    from PIL import Image

    sys.path.insert(0, str(REPO))
    from brandstudio.generation.procedural import random_scene, render_scene

    out = profile / "references"
    if out.exists():
        for old in out.iterdir():
            old.unlink()
    out.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = REFERENCE_SIZE
    for i in range(REFERENCE_COUNT):
        scene = random_scene(rng, list(swatches), motion=0.0)
        still = render_scene(scene, frames=1, width=width, height=height)[0]
        Image.fromarray((still * 255 + 0.5).astype(np.uint8)).save(out / f"ref-{i:02d}.png", optimize=True)
        (out / f"ref-{i:02d}.txt").write_text(_caption(scene, swatches, chinese) + "\n", encoding="utf-8")
    for i in range(REFERENCE_CLIPS):
        scene = random_scene(rng, list(swatches), motion=REFERENCE_CLIP_MOTION)
        clip = render_scene(scene, frames=REFERENCE_CLIP_FRAMES, width=width, height=height)
        write_reference_clip(out / f"clip-{i:02d}.mp4", (clip * 255 + 0.5).astype(np.uint8))
        (out / f"clip-{i:02d}.txt").write_text(_caption(scene, swatches, chinese) + "\n", encoding="utf-8")
    log(f"  wrote {out.relative_to(REPO)}/: {REFERENCE_COUNT} stills and {REFERENCE_CLIPS} clips with captions")


#: how the demo LoRAs are trained (rank, steps per expert, learning rate): minutes on a CPU
DEMO_LORA_TRAINING = {"rank": 16, "steps": 3600, "learning_rate": 2e-3, "checkpoint_every": 1200, "seed": 0}


def train_demo_loras() -> None:
    """``loras/*.safetensors``: each demo profile's LoRA, trained by ``brandstudio lora train`` on
    its reference stills and clips for the offline ``tiny`` model (both experts)."""
    import tempfile

    sys.path.insert(0, str(REPO))
    from brandstudio.style import LoraTrainingConfig, train_lora

    for profile, name in ((AURORA, "aurora-film"), (QINGLAN, "qinglan-ink")):
        with tempfile.TemporaryDirectory() as work:
            result = train_lora(profile, name=name, output=profile / "loras" / f"{name}.safetensors",
                                config=LoraTrainingConfig(**DEMO_LORA_TRAINING), work_dir=Path(work) / "run")
        result.loss_plot.unlink()  # the plot is the run's, not an asset of the profile
        losses = {k: f"{np.mean(v[:20]):.3f} -> {np.mean(v[-20:]):.3f}" for k, v in result.losses.items()}
        log(f"  wrote {result.path.relative_to(REPO)} in {result.seconds:.0f} s (loss {losses})")


# ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--font-source", type=Path, default=None,
                    help="directory with the extracted fonts-noto-core / fonts-noto-cjk Debian packages")
    ap.add_argument("--skip-loras", action="store_true", help="keep the LoRAs (training them takes minutes)")
    args = ap.parse_args(argv)

    if args.font_source is not None:
        log("fonts")
        make_fonts(args.font_source.resolve())
    for p, f in ((AURORA, AURORA_FONT), (QINGLAN, QINGLAN_FONT)):
        if not (p / f).is_file():
            sys.exit(f"error: {p / f} is missing -- run once with --font-source (see --help)")
    log("luts")
    make_lut(AURORA / "luts" / "aurora-warm.cube", grade_aurora, "Aurora Coffee warm", "Aurora Coffee: filmic warm grade")
    make_lut(QINGLAN / "luts" / "qinglan-jade.cube", grade_qinglan, "Qinglan Tea jade", "Qinglan Tea: soft jade ink-wash grade")
    log("logos")
    make_aurora_logo(AURORA)
    make_qinglan_logo(QINGLAN)
    log("music")
    calm = make_music(AURORA, "morning-roast", synth_morning_roast, -22.0, loud=False, readme=False)
    upbeat = make_music(AURORA, "bright-brew", synth_bright_brew, -16.0, loud=False, readme=False)
    write_music_readme(AURORA, [(calm, "calm", 84), (upbeat, "upbeat", 124)])
    make_music(QINGLAN, "qinglan-breeze", synth_qinglan_breeze, -9.0, loud=True)
    log("references")
    make_references(AURORA, AURORA_SWATCHES, seed=101, chinese=False)
    make_references(QINGLAN, QINGLAN_SWATCHES, seed=202, chinese=True)
    if not args.skip_loras:
        log("loras (brandstudio lora train on the references)")
        train_demo_loras()
    write_readmes()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
