"""`brandstudio lut fit` from graded pairs, against what a user would reach for instead.

A colourist's look (per-channel gamma, contrast, a cross-channel matrix, a lift) is applied to
procedural stills; each method learns a 33-point table from the (before, after) pairs and is
scored on *other* stills it never saw (ΔE2000 after 8-bit rounding, mean and p95), with its fit
time. The methods, in one run:

- ``brandstudio``: regularised least squares over the lattice with the grade's own tetrahedral
  weights (:func:`brandstudio.style.fit_pairs`);
- ``scipy RBF``: ``scipy.interpolate.RBFInterpolator`` (linear kernel, 64 neighbours,
  smoothing) fitted on a subsample of the pairs and evaluated at the lattice points, the usual
  scattered-data answer;
- ``binning``: every pixel's graded colour averaged into its nearest lattice point, empty points
  left at identity (what a quick script does).

    python bench/lut_fit.py [--pixels 200000] [--rbf-samples 20000]
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date

import numpy as np
import scipy.interpolate
import torch

from brandstudio.frames import srgb_to_lab
from brandstudio.post.grade import LUT
from brandstudio.style import apply_lut, fit_pairs
from brandstudio.style.lut_fit import identity_lattice

SIZE = 33


def known_grade(x: np.ndarray) -> np.ndarray:
    """A colourist's warm, contrasty look on float RGB in [0, 1] (also the tests' known grade)."""
    y = x ** np.array([0.9, 1.0, 1.15])
    y = 0.5 + (y - 0.5) * 1.15
    m = np.array([[1.05, 0.05, -0.10], [0.02, 1.00, -0.02], [-0.05, 0.00, 0.90]])
    return np.clip(y @ m.T + np.array([0.03, 0.01, -0.03]), 0.0, 1.0)


def stills(n: int, size: int = 96, seed: int = 0) -> list[np.ndarray]:
    """Procedural "photographs": smooth gradients in random hues, soft blobs and grain."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        base = rng.random(3)[None, None] * (1 - yy[..., None]) + rng.random(3)[None, None] * xx[..., None]
        cx, cy, r = rng.random(3)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.05 + 0.2 * r))[..., None] * rng.random(3)
        out.append(np.rint(np.clip(0.7 * base + 0.5 * blob + rng.normal(0, 0.04, (size, size, 3)), 0, 1) * 255)
                   .astype(np.uint8))  # fmt: skip
    return out


def graded(img: np.ndarray) -> np.ndarray:
    return np.rint(known_grade(img / 255.0) * 255).astype(np.uint8)


def score(lut: LUT, tests: list[np.ndarray]) -> tuple[float, float]:
    import colour

    got = np.concatenate([np.clip(np.rint(apply_lut(lut, t) * 255), 0, 255).astype(np.uint8).reshape(-1, 3) for t in tests])
    want = np.concatenate([graded(t).reshape(-1, 3) for t in tests])
    de = colour.delta_E(srgb_to_lab(got), srgb_to_lab(want), method="CIE 2000")
    return float(de.mean()), float(np.percentile(de, 95))


def rbf(before: np.ndarray, after: np.ndarray, samples: int) -> LUT:
    # distinct colours only (repeated points make its local systems singular), then a random subsample
    _, first = np.unique(before, axis=0, return_index=True)
    take = np.random.default_rng(0).permutation(first)[:samples]
    f = scipy.interpolate.RBFInterpolator(before[take] / 255.0, after[take] / 255.0, kernel="linear", degree=0,
                                          neighbors=64, smoothing=1e-2)  # fmt: skip
    return LUT(np.clip(f(identity_lattice(SIZE)), 0, 1).reshape(SIZE, SIZE, SIZE, 3).astype(np.float32))


def binning(before: np.ndarray, after: np.ndarray) -> LUT:
    idx = np.rint(before / 255.0 * (SIZE - 1)).astype(int)
    flat = (idx[:, 0] * SIZE + idx[:, 1]) * SIZE + idx[:, 2]
    sums = np.zeros((SIZE**3, 3))
    np.add.at(sums, flat, after / 255.0)
    counts = np.bincount(flat, minlength=SIZE**3)[:, None]
    table = np.where(counts > 0, sums / np.maximum(counts, 1), identity_lattice(SIZE))
    return LUT(table.reshape(SIZE, SIZE, SIZE, 3).astype(np.float32))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stills", type=int, default=8)
    ap.add_argument("--size", type=int, default=160, help="px per side of each still")
    ap.add_argument("--rbf-samples", type=int, default=20000)
    args = ap.parse_args()
    train = stills(args.stills, args.size, seed=1)
    tests = stills(4, args.size, seed=99)
    pairs = [(s, graded(s)) for s in train]
    before = np.concatenate([b.reshape(-1, 3) for b, _ in pairs]).astype(np.float64)
    after = np.concatenate([a.reshape(-1, 3) for _, a in pairs]).astype(np.float64)
    rows = []
    for name, run in (
        ("brandstudio (least squares, tetrahedral)", lambda: fit_pairs(pairs, size=SIZE).lut),
        (f"scipy RBFInterpolator ({args.rbf_samples} samples)", lambda: rbf(before, after, args.rbf_samples)),
        ("binning to nearest lattice point", lambda: binning(before, after)),
        ("identity (no LUT)", lambda: LUT.identity(SIZE)),
    ):
        t0 = time.perf_counter()
        lut = run()
        seconds = time.perf_counter() - t0
        rows.append((name, seconds, *score(lut, tests)))
    base = rows[0][1]
    print(f"### LUT fit from graded pairs ({date.today()}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads)\n")  # fmt: skip
    print(f"{args.stills} training stills of {args.size}² px ({len(before)} pixels), scored on 4 unseen stills\n")
    print("| method | fit s | × brandstudio | ΔE2000 mean | ΔE2000 p95 |")
    print("|---|---|---|---|---|")
    for name, seconds, mean, p95 in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / base:.1f} | {mean:.2f} | {p95:.2f} |")


if __name__ == "__main__":
    main()
