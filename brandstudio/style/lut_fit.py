"""A 3D LUT fitted to the brand: from a colourist's graded pairs, or from reference stills.

**From graded pairs** (:func:`fit_pairs`): each ``before`` still and its ``after`` (the same
picture, graded by the brand's colourist) give one equation per pixel: the LUT looked up at the
``before`` colour, with the very interpolation a grade uses (tetrahedral by default,
:data:`brandstudio.post.grade.INTERPOLATION_WEIGHTS`), must give the ``after`` colour. A lookup
is linear in the table, so the table is the regularised least-squares solution of

    minimise  ‖W·T − after‖²  +  λ·(m/n³)·Σ_axes ‖∂²T‖²  +  μ·(m/n³)·‖T − identity‖²

over the ``n³`` lattice points (``m`` pixels): the second differences along each axis keep the
table smooth where no pixel constrains it (colours the pairs never show are interpolated from
their neighbours, not left at identity with a seam), and the small pull towards identity makes
the solution unique. The normal equations are sparse and positive definite: conjugate gradients
with a Jacobi preconditioner solve a 33-point table from 200 000 pixels in 1-3 s on two CPU cores (``bench/lut_fit.py``). A tenth
of the pixels is held back, and the result reports the ΔE2000 the fitted LUT leaves on them.

**From references only** (:func:`fit_references`): the transfer from the model's own footage
(frames of sample clips) to the reference stills' colour distribution, from
:mod:`brandstudio.post.match`, is applied to every lattice point: the same transfer for every
future clip, baked into a table. The default, ``chroma``, moves the two colour axes of CIELAB
(a*, b*: mean and spread, Reinhard's transfer) and leaves lightness alone: a model's brightness
changes from prompt to prompt far more than its colour cast, and a lightness transfer fitted
on one scene's footage (3x the contrast and +70 levels, from a dark sample scene to bright
stills) clipped 91 % of the pixels of a brighter shot and froze it. ``mkl`` (Monge-Kantorovich,
RGB mean and covariance) and ``reinhard`` (all three CIELAB axes) also move lightness, for
footage that is representative of every shot.

:func:`write_cube` writes the table as a ``.cube`` (colour-science's writer), atomically.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> before = rng.integers(0, 256, (64, 64, 3), np.uint8)
    >>> after = np.clip(before.astype(int) + [12, 0, -12], 0, 255).astype(np.uint8)  # a warm shift
    >>> fit = fit_pairs([(before, after)], size=9)
    >>> fit.lut.size, fit.held_out_delta_e["p95"] < 3
    (9, True)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import RequestError
from ..files import temp_path
from ..frames import srgb_to_lab
from ..post.grade import INTERPOLATION_WEIGHTS, INTERPOLATORS, LUT
from ..post.match import MATCHERS, MAX_GAIN

__all__ = ["BAKEABLE_METHODS", "LutFit", "apply_lut", "fit_pairs", "fit_references", "identity_lattice", "write_cube"]

#: colour-transfer methods that are one transform for every frame, so a table can hold them
BAKEABLE_METHODS = ("chroma", "mkl", "reinhard")
#: pixels the least squares reads at most (sampled evenly across the pairs)
MAX_PIXELS = 400_000
_HOLD_OUT = 0.1  # the share of pixels kept out of the fit, to measure it
_ANCHOR = 1e-3  # the pull towards identity, relative to the data term


@dataclass(frozen=True)
class LutFit:
    """A fitted table and how well it fits.

    ``held_out_delta_e``: ΔE2000 (mean, p95, max) of the fitted LUT on pixels kept out of the
    fit, against their graded colour; ``before_delta_e``: the same between the ungraded and the
    graded pixels (what the LUT had to learn). Empty for a fit to references.
    """

    lut: LUT
    method: str
    pixels: int
    held_out_delta_e: dict[str, float] = field(default_factory=dict)
    before_delta_e: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "size": self.lut.size,
            "method": self.method,
            "pixels": self.pixels,
            "held_out_delta_e": self.held_out_delta_e,
            "before_delta_e": self.before_delta_e,
        }


def identity_lattice(size: int) -> np.ndarray:
    """The ``size³`` lattice points as ``(size³, 3)`` float in [0, 1], r slowest (the table's order)."""
    g = np.linspace(0.0, 1.0, size)
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)


def apply_lut(lut: LUT, pixels: np.ndarray, interpolation: str = "tetrahedral") -> np.ndarray:
    """``pixels`` (uint8 ``(..., 3)``) through ``lut`` as float in [0, 1] (no rounding)."""
    flat = pixels.reshape(-1, 3).astype(np.float32) / 255.0
    return INTERPOLATORS[interpolation](flat, lut.planes, lut.size).reshape(pixels.shape)


def _check_size(size: int) -> int:
    if not 2 <= int(size) <= 129:
        raise RequestError(f"`size` must be between 2 and 129 lattice points, got {size}", field="size", value=size,
                           fix="use 33 (the usual size) or 17 for a coarse table")  # fmt: skip
    return int(size)


def _sample_pairs(pairs: Sequence[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to :data:`MAX_PIXELS` ``(before, after)`` pixels, evenly from every pair, shuffled."""
    per_pair = max(1, MAX_PIXELS // len(pairs))
    befores, afters = [], []
    for i, (before, after) in enumerate(pairs):
        if before.shape != after.shape:
            raise RequestError(
                f"graded pair {i}: the before still is {before.shape[1]}x{before.shape[0]} and the after still "
                f"{after.shape[1]}x{after.shape[0]}", field=f"pairs[{i}]",
                fix="export both stills of a pair at the same size, without cropping",
            )  # fmt: skip
        b, a = before.reshape(-1, 3), after.reshape(-1, 3)
        take = rng.permutation(len(b))[:per_pair]
        befores.append(b[take])
        afters.append(a[take])
    return np.concatenate(befores), np.concatenate(afters)


def _smoothness_operator(size: int):
    """``Σ_axes D_axisᵀ D_axis``: the squared second differences of the table along r, g and b."""
    import scipy.sparse as sp

    d = sp.diags([np.ones(size - 2), -2 * np.ones(size - 2), np.ones(size - 2)], [0, 1, 2], shape=(size - 2, size))
    eye = sp.identity(size, format="csr")
    axes = (sp.kron(sp.kron(d, eye), eye), sp.kron(sp.kron(eye, d), eye), sp.kron(sp.kron(eye, eye), d))
    return sum(a.T @ a for a in axes)


def _solve(before: np.ndarray, after: np.ndarray, size: int, smoothness: float, interpolation: str) -> np.ndarray:
    """The regularised least-squares table (see the module docstring), ``(size, size, size, 3)``."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    m, cells = len(before), size**3
    corners, weights = INTERPOLATION_WEIGHTS[interpolation](before.astype(np.float32) / 255.0, size)
    k = len(corners)
    design = sp.csr_matrix(
        (np.stack(weights, axis=1).ravel(), (np.repeat(np.arange(m), k), np.stack(corners, axis=1).ravel())),
        shape=(m, cells),
    )
    identity = identity_lattice(size)
    scale = m / cells  # the regularisers weigh as much per lattice point whatever the pixel count
    normal = (design.T @ design + smoothness * scale * _smoothness_operator(size)
              + _ANCHOR * scale * sp.identity(cells)).tocsr()  # fmt: skip
    rhs = design.T @ (after.astype(np.float64) / 255.0) + _ANCHOR * scale * identity
    jacobi = sp.diags(1.0 / normal.diagonal())
    table = np.empty((cells, 3))  # relative residual 1e-5: tighter changes no ΔE figure (bench/lut_fit.py)
    for c in range(3):
        table[:, c], _ = spla.cg(normal, rhs[:, c], x0=identity[:, c], M=jacobi, rtol=1e-5, maxiter=5000)
    return np.clip(table, 0.0, 1.0).reshape(size, size, size, 3)


def _delta_e(got: np.ndarray, want: np.ndarray) -> dict[str, float]:
    """ΔE2000 of two sets of uint8 sRGB pixels: mean, 95th percentile, max."""
    import colour

    de = colour.delta_E(srgb_to_lab(got), srgb_to_lab(want), method="CIE 2000")
    return {"mean": round(float(de.mean()), 3), "p95": round(float(np.percentile(de, 95)), 3),
            "max": round(float(de.max()), 3)}  # fmt: skip


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def fit_pairs(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    size: int = 33,
    smoothness: float = 10.0,
    interpolation: str = "tetrahedral",
    seed: int = 0,
    name: str = "brand",
) -> LutFit:
    """Fit a ``size``-point 3D LUT to graded ``(before, after)`` pairs of uint8 ``(H, W, 3)`` stills.

    ``smoothness`` weighs the second differences of the table (larger: smoother, less exact);
    ``interpolation`` is the one the profile grades with. A tenth of the pixels is held back and
    the result reports the fitted LUT's ΔE2000 on them.
    """
    size = _check_size(size)
    if not pairs:
        raise RequestError("no graded pairs to fit", field="pairs", fix="pass at least one (before, after) pair")
    if interpolation not in INTERPOLATION_WEIGHTS:
        raise RequestError(f"unknown interpolation {interpolation!r}", field="interpolation", value=interpolation,
                           fix=f"use one of {sorted(INTERPOLATION_WEIGHTS)}")  # fmt: skip
    before, after = _sample_pairs(pairs, np.random.default_rng(seed))
    held = max(1, int(len(before) * _HOLD_OUT)) if len(before) > 10 else 0
    table = _solve(before[held:], after[held:], size, smoothness, interpolation)
    lut = LUT(table.astype(np.float32), name=name)
    check_before, check_after = (before[:held], after[:held]) if held else (before, after)
    fitted = _to_uint8(apply_lut(lut, check_before[None], interpolation)[0])
    return LutFit(lut, "pairs", len(before) - held, _delta_e(fitted, check_after), _delta_e(check_before, check_after))


def fit_references(
    footage: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    *,
    method: str = "chroma",
    size: int = 33,
    name: str = "brand",
) -> LutFit:
    """Bake the colour transfer from ``footage`` (the model's frames, uint8 ``(H, W, 3)``) to the
    ``references`` (the brand's stills) into a ``size``-point LUT, by ``method`` (``"chroma"``,
    the default: a* and b* only, lightness kept; ``"mkl"`` or
    ``"reinhard"``)."""
    size = _check_size(size)
    if method not in BAKEABLE_METHODS:
        raise RequestError(f"method {method!r} cannot be baked into a LUT", field="method", value=method,
                           fix=f"use one of {list(BAKEABLE_METHODS)} (histogram matching depends on each frame)")  # fmt: skip
    for what, images in (("footage", footage), ("references", references)):
        if not images:
            raise RequestError(f"no {what} to fit from", field=what,
                               fix="pass sample clips of the model (--footage) and the brand's reference stills")  # fmt: skip
    _check_spread(footage, references)
    matcher = MATCHERS[method]
    source = matcher.stats(np.concatenate([f.reshape(-1, 3) for f in footage])[:, None, :])
    target = matcher.stats(np.concatenate([r.reshape(-1, 3) for r in references])[:, None, :])
    lattice = _to_uint8(identity_lattice(size))[:, None, :]
    table = matcher.transfer(lattice, source, target).reshape(size, size, size, 3).astype(np.float32) / 255.0
    return LutFit(LUT(table, name=name), method, sum(f.size // 3 for f in footage))


def _spread(images: Sequence[np.ndarray]) -> float:
    """The colour spread of ``images``: the root of the total variance of their RGB pixels (8-bit units)."""
    pixels = np.concatenate([np.asarray(i).reshape(-1, 3)[:: max(1, np.asarray(i).size // 3 // 50_000)]
                             for i in images]).astype(np.float64)  # fmt: skip
    return float(np.sqrt(np.cov(pixels, rowvar=False).trace()))


def _check_spread(footage: Sequence[np.ndarray], references: Sequence[np.ndarray]) -> None:
    """Refuse footage too flat to fit a transfer from.

    Reaching the references' spread from footage more than :data:`MAX_GAIN` times flatter would
    need more gain than the transfer may apply, so the baked table would be wrong for every shot
    with real contrast (an almost uniform sample clip gave a LUT that clipped others to one colour).
    """
    have, want = _spread(footage), _spread(references)
    if have * MAX_GAIN < want:
        raise RequestError(
            f"the footage is almost one flat colour (colour spread {have:.1f} against the references' "
            f"{want:.1f}, in 8-bit units): a transfer fitted from it would need more than {MAX_GAIN:g}x "
            "gain and would clip every other shot",
            field="footage",
            fix="fit from sample clips with visible content (renders of the brand's templates, or the scene "
            "cache), or from graded pairs (--pairs)",
        )


def write_cube(lut: LUT, path: str | Path, *, title: str | None = None) -> Path:
    """Write ``lut`` as a ``.cube`` at ``path`` (colour-science's writer), atomically."""
    import colour

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, ".part.cube")
    try:
        colour.io.write_LUT(colour.LUT3D(np.asarray(lut.table, np.float64), name=title or lut.name), str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
