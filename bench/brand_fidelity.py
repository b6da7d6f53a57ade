"""Brand fidelity: the same requests and seeds with the base model, the trained LoRA, and the LoRA
with a LUT fitted to the brand's references, measured by QC against each demo profile.

For each demo profile, three variants of the profile (copies, edited):

- ``base model``: the profile without its ``[[style.loras]]`` (the shipped LUT kept);
- ``+ trained LoRA``: the profile as shipped (its LoRA trained by ``lora train`` on its
  reference stills and clips, ``brand_profiles/make_assets.py``);
- ``+ LoRA + fitted LUT``: the shipped profile with ``lut fit`` to the reference stills (its default
  ``chroma`` transfer, baked) as its ``[colour] lut``, fitted from the LoRA's footage as the model makes it:
  renders of the LoRA variant without its ``[colour] lut`` (the fitted table replaces that grade,
  so it must be fitted from ungraded frames).

Each renders the same requests (``product-hero``, two aspects, three seeds) and QC reports the
palette check (95th percentile of each frame's weighted ΔE2000 to the nearest brand swatch), the
frames check's motion (the median pixel's change over the clip, 8-bit levels; QC calls a clip
frozen under 0.5), and, when a CLIP model is configured (``BRANDSTUDIO_CLIP_MODEL``), the style
similarity to the reference stills; without one the column says so.

    python bench/brand_fidelity.py [--seeds 3] [--duration 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from demo_render import machine

from brandstudio import BrandStudio
from brandstudio.errors import RequestError
from brandstudio.style import fit_lut

REPO = Path(__file__).resolve().parent.parent
PRODUCTS = {"aurora-coffee": "Night Roast", "qinglan-tea": "明前龙井"}
ASPECTS = ("16:9", "9:16")
_LUT_LINE = re.compile(r"^lut\s*=.*$", re.M)
_LORA_TABLE = re.compile(r"^\[\[style\.loras\]\].*?(?=^\[)", re.M | re.S)


def variant(src: Path, dest: Path, kind: str, lut_from: list[Path] | None = None) -> Path:
    shutil.copytree(src, dest)
    toml = dest / "brand.toml"
    if kind == "base":
        toml.write_text(_LORA_TABLE.sub("", toml.read_text(encoding="utf-8")), encoding="utf-8")
    if kind == "ungraded":
        toml.write_text(_LUT_LINE.sub("", toml.read_text(encoding="utf-8")), encoding="utf-8")
    if kind == "lut":
        fit_lut(dest, footage=lut_from, output=dest / "luts" / "fitted.cube", apply=True)
    return dest


def render_all(profile: Path, out: Path, seeds: int, duration: float) -> list[dict]:
    studio = BrandStudio(profile, output_dir=out, cache=False)
    rows = []
    for seed in range(1, seeds + 1):
        for aspect in ASPECTS:
            clip = studio.render("product-hero", product=PRODUCTS[profile.name.split("+")[0]], aspect=aspect,
                                 seed=seed, duration=duration)  # fmt: skip
            checks = clip.qc["checks"]
            footage = json.loads(clip.path.with_suffix(".qc.json").read_text(encoding="utf-8"))["footage"]
            rows.append({"path": clip.path, "palette": checks["palette"]["value"], "motion": footage["motion"],
                         "palette_status": checks["palette"]["status"],
                         "style": (checks.get("style") or {}).get("value"),
                         "style_status": (checks.get("style") or {}).get("status", "skip")})  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=2.0)
    args = ap.parse_args()
    started = time.perf_counter()
    table, refused = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in PRODUCTS:
            src = REPO / "brand_profiles" / name
            results = {}
            base = variant(src, root / f"{name}+base", "base")
            results["base model"] = render_all(base, root / "out-base", args.seeds, args.duration)
            lora = variant(src, root / f"{name}+lora", "lora")
            results["+ trained LoRA"] = render_all(lora, root / "out-lora", args.seeds, args.duration)
            ungraded = variant(src, root / f"{name}+ungraded", "ungraded")
            footage = render_all(ungraded, root / "out-ungraded", args.seeds, args.duration)
            try:
                fitted = variant(src, root / f"{name}+lut", "lut", lut_from=[r["path"] for r in footage])
                results["+ LoRA + fitted LUT"] = render_all(fitted, root / "out-lut", args.seeds, args.duration)
            except RequestError as exc:  # lut fit refuses footage too flat to fit from: say so
                refused.append((name, exc.message))
            for label, rows in results.items():
                palette = [r["palette"] for r in rows]
                styles = [r["style"] for r in rows if r["style"] is not None]
                passed = sum(r["palette_status"] == "pass" for r in rows)
                motion = [r["motion"] for r in rows]
                table.append((name, label, statistics.mean(palette), max(palette), passed, len(rows),
                              statistics.mean(motion), min(motion), statistics.mean(styles) if styles else None))  # fmt: skip
    clip = os.environ.get("BRANDSTUDIO_CLIP_MODEL")
    print(f"## Brand fidelity ({date.today()}, {machine()})\n")
    print(f"`product-hero`, aspects {' and '.join(ASPECTS)}, seeds 1-{args.seeds}, {args.duration:g} s clips; "
          f"CLIP model: {clip or 'none configured (style column skipped)'}; {time.perf_counter() - started:.0f} s in all.\n")  # fmt: skip
    print(
        "| profile | variant | palette ΔE2000 p95 (mean of clips) | worst clip | palette passes "
        "| motion (mean, least) | CLIP style |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, label, mean, worst, passed, total, motion, least, style in table:
        style_text = f"{style:.3f}" if style is not None else "skipped: no CLIP model"
        print(f"| {name} | {label} | {mean:.1f} | {worst:.1f} | {passed}/{total} | {motion:.2f}, {least:.2f} | {style_text} |")
    for name, why in refused:
        print(f"| {name} | + LoRA + fitted LUT | `lut fit` refused: {why} | | | | |")


if __name__ == "__main__":
    main()
