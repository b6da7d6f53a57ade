"""Benchmark: a 30 s long take on the offline ``tiny-ti2v`` model, and its colour drift with and
without the per-segment correction (:class:`~brandstudio.post.take_match.TakeMatch`).

The demo profile is switched to ``tiny-ti2v`` (its LoRAs are for the T2V demo model and are
left out) and one clip of ``--duration`` seconds is rendered through ``BrandStudio.render``: a
chain of generations of ``--max-frames`` frames, each continuing from the take so far, joined
with an overlap blend, each segment's colour pulled back to the first's, graded, encoded. The
generated take is then read back from the scene cache (every segment a hit) and measured raw
and corrected:

* per segment: mean L* and mean chroma C*ab over its frames; the drift is the largest distance
  of any segment's mean from the first segment's;
* per frame (:func:`~brandstudio.post.match.colour_drift`): the range of mean L* and chroma
  over the take, and the CIEDE2000 of each frame's mean colour to the first frame's.

    python bench/long_take.py [--duration 30] [--max-frames 33] [--seed 3]
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from demo_render import machine

from brandstudio import BrandStudio
from brandstudio.frames import srgb_to_lab
from brandstudio.generation import clip_spec, frames_for, generate_long_take
from brandstudio.post.match import colour_drift
from brandstudio.post.take_match import TakeMatch

REPO = Path(__file__).resolve().parents[1]


def ti2v_profile(base: Path, dest: Path, max_frames: int) -> Path:
    """A copy of ``base`` on ``tiny-ti2v`` at 256x128 with flow shift 5 (no LoRAs: they are for
    the T2V demo model)."""
    shutil.copytree(base, dest)
    text = (dest / "brand.toml").read_text(encoding="utf-8")
    text = text.replace('id = "tiny"', 'id = "tiny-ti2v"').replace("max_frames = 81", f"max_frames = {max_frames}")
    text = text.replace("height = 144", "height = 128")  # the Wan2.2 VAE: multiples of 32
    text = re.sub(r"flow_shift = [0-9.]+", "flow_shift = 5.0", text)  # what tiny-ti2v is trained and sampled at
    text = re.sub(r"\[\[style\.loras\]\].*?(?=\n\[colour\])", "", text, flags=re.S)
    (dest / "brand.toml").write_text(text, encoding="utf-8")
    return dest


def segment_means(frames: np.ndarray, starts) -> np.ndarray:
    """``(segments, 2)``: mean L* and mean chroma of each segment's frames."""
    bounds = [*starts, len(frames)]
    rows = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        lab = srgb_to_lab(frames[a:b:2, ::2, ::2]).reshape(-1, 3).astype(np.float64)
        rows.append((lab[:, 0].mean(), np.hypot(lab[:, 1], lab[:, 2]).mean()))
    return np.array(rows)


def drift_row(name: str, frames: np.ndarray, starts) -> str:
    seg = segment_means(frames, starts)
    l_drift, c_drift = np.abs(seg - seg[0]).max(axis=0)
    d = colour_drift(frames[::2])
    return (f"| {name} | {l_drift:.2f} | {c_drift:.2f} | {seg[-1, 0] - seg[0, 0]:+.2f} | {seg[-1, 1] - seg[0, 1]:+.2f} "
            f"| {d['l_range']:.2f} | {d['chroma_range']:.2f} | {d['delta_e_mean']:.2f} | {d['delta_e_max']:.2f} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--max-frames", type=int, default=33, help="frames per generation (4k+1)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--resolution", type=int, default=256, help="delivered shorter side (px)")
    ap.add_argument("--profile", default=str(REPO / "brand_profiles" / "aurora-coffee"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        profile = ti2v_profile(Path(args.profile), Path(tmp) / "profile", args.max_frames)
        studio = BrandStudio(profile, output_dir=Path(tmp) / "out", cache=Path(tmp) / "scenes", device="cpu")
        t0 = time.perf_counter()
        result = studio.render("product-hero", product="Night Roast", duration=args.duration, aspect="16:9", seed=args.seed,
                               resolution=args.resolution)
        seconds = time.perf_counter() - t0
        take = result.generation["take"]
        starts = take["segment_starts"]

        # the generated take again, from the scene cache (every segment a hit): raw, then corrected
        m = studio.profile.spec.model
        spec = clip_spec(studio.profile, studio.generator, prompt=result.prompt, negative=result.negative_prompt,
                         seed=result.seed, aspect="16:9", duration=m.max_frames / m.fps)  # fmt: skip
        raw = generate_long_take(studio.generator, spec, total=frames_for(args.duration, m.fps),
                                 profile=studio.profile, cache=studio.cache)  # fmt: skip
        assert raw.cache == "hit", raw.cache
        fixed = TakeMatch.planned(raw.frames, starts, studio.profile.spec.colour.take_match).apply(raw.frames)

    print(f"### Long take: {args.duration:g} s on tiny-ti2v, {len(take['segments'])} generations of "
          f"{args.max_frames} frames, overlap {take['overlap']} ({date.today().isoformat()}, {machine()})\n")  # fmt: skip
    print(f"Rendered through `BrandStudio.render` in {seconds:.1f} s ({result.width}x{result.height}, "
          f"{result.fps:g} fps, {result.duration:g} s, QC {result.qc['status']}).\n")  # fmt: skip
    print("| take | L* drift (max, segments) | chroma drift (max) | L* first→last | chroma first→last "
          "| L* range (frames) | chroma range | ΔE2000 to frame 0 (mean) | (max) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(drift_row("generated, uncorrected", raw.frames, starts))
    print(drift_row("with `take_match = reinhard`", fixed, starts))


if __name__ == "__main__":
    main()
