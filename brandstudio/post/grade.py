"""Colour grading with a ``.cube`` LUT.

Files are read with colour-science (:func:`colour.io.read_LUT`, which understands 1D and
3D ``.cube`` tables, a 1D shaper in front of a 3D cube, and ``DOMAIN_MIN``/``DOMAIN_MAX``).
Applying the LUT is done here, by hand, because the frames are 8-bit and there are many
of them:

* ``colour.LUT3D.apply`` works in float64 on every pixel and builds six candidate results
  per pixel (``np.select``); on 81 frames of 1280x720 that is minutes and gigabytes.
* :func:`_tetrahedral` below picks the one tetrahedron per pixel from the order of the
  fractional coordinates (max / mid / min axis) and gathers just four vertices, in
  float32, a chunk of pixels at a time, so memory stays bounded. It works on planar data
  (one contiguous row per axis and per output channel), which numpy gathers and combines
  about 2.5x faster than ``(N, 3)`` rows.
* For large clips :class:`Grade` *bakes* the whole grade (LUT + strength blend) into a
  256^3 table once (16.7 M interpolations, about as many as 18 frames of 720p: 0.6-0.8 s on
  two cores) and then grades every pixel with a single table lookup (about 2.6 ms per
  832x480 frame). Baked tables are kept on disk
  (:mod:`brandstudio.post.lut_cache`, keyed by the LUT's content, strength, method and
  table version), so the bake is paid once per LUT, not once per render; whenever a table
  is on disk, even a short clip uses it.
* ``backend="torch"`` (:mod:`brandstudio.post.grade_torch`) runs the same kernels on a torch
  device; ``backend="auto"`` picks it when CUDA is available (no bake needed there).

All paths agree with ``colour.LUT3D.apply(x, interpolator=table_interpolation_tetrahedral)``
to within 1/255 on 8-bit output (``tests/post/test_grade.py`` and
``tests/test_grade_fast.py`` check it); ``bench/grade.py`` measures them against
colour-science and ffmpeg's ``lut3d`` filter.

Example:
    >>> import numpy as np
    >>> from brandstudio.post.grade import LUT, Grade
    >>> lut = LUT.identity(5)
    >>> frames = np.random.default_rng(0).integers(0, 256, (2, 4, 6, 3), dtype=np.uint8)
    >>> bool((Grade(lut).apply(frames) == frames).all())
    True
    >>> warm = LUT(table=lut.table * np.float32([0.8, 1.0, 0.9]))
    >>> Grade(warm, strength=0.5).apply(np.full((1, 1, 1, 3), 200, np.uint8))[0, 0, 0].tolist()
    [180, 200, 190]
"""

from __future__ import annotations

import os
import re
import sys
import threading
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from brandstudio.errors import AssetError
from brandstudio.files import (
    MAX_LUT_1D_SIZE,
    MAX_LUT_BYTES,
    MAX_LUT_SIZE,
    check_user_file,
    read_user_text,
)
from brandstudio.frames import check_frames
from brandstudio.profile.assets import ASSET_CHECKS
from brandstudio.registry import LUT_INTERPOLATIONS

from .effect import Effect
from .lut_cache import LutCache, bake_key

__all__ = [
    "BACKENDS",
    "INTERPOLATION_WEIGHTS",
    "INTERPOLATORS",
    "LUT",
    "Grade",
    "read_lut",
    "tetrahedral_weights",
    "trilinear_weights",
]

#: pixels per chunk of the direct kernel (bounds temporary memory to ~100 MB)
_CHUNK = 1 << 20
#: pixels per block of the baked-table lookup (its index buffer: 2 MB)
_LOOKUP_BLOCK = 1 << 18
#: above this many pixels a Grade bakes a 256^3 table first (cheaper than the direct kernel)
_BAKE_THRESHOLD = 1 << 24


@dataclass(frozen=True, eq=False)
class LUT:
    """A colour lookup table in the form the kernels use.

    Attributes:
        table: float32, ``(N, 3)`` for a 1D (per-channel) LUT or ``(N, N, N, 3)`` for a 3D
            LUT indexed ``[r, g, b]``.
        domain: float32 ``(2, 3)``: the input values that map to the table's first and
            last entries, per channel.
        name: a title for messages.
        shaper: an optional 1D LUT applied before this one (``.cube`` files may hold both).
    """

    table: np.ndarray
    domain: np.ndarray = field(default_factory=lambda: np.array([[0, 0, 0], [1, 1, 1]], np.float32))
    name: str = "LUT"
    shaper: LUT | None = None

    def __post_init__(self) -> None:
        # private read-only copies: a LUT is shared (read_lut returns the same object for the same
        # file) and its table may be baked or hashed at any time
        table = np.array(self.table, dtype=np.float32, order="C")
        domain = np.array(self.domain, dtype=np.float32).reshape(2, 3)
        if (
            table.ndim == 2
            and table.shape[1] == 3
            and table.shape[0] >= 2
            or table.ndim == 4
            and table.shape[-1] == 3
            and table.shape[0] == table.shape[1] == table.shape[2] >= 2
        ):
            pass
        else:
            raise ValueError(f"`table` must have shape (N, 3) or (N, N, N, 3), got {table.shape}")
        if not np.isfinite(table).all():
            raise ValueError("`table` holds non-finite values (NaN or inf)")
        if not np.isfinite(domain).all() or (domain[1] <= domain[0]).any():
            raise ValueError(f"`domain` must be finite with min < max per channel, got {domain.tolist()}")
        table.flags.writeable = False
        domain.flags.writeable = False
        object.__setattr__(self, "table", table)
        object.__setattr__(self, "domain", domain)

    @property
    def dimensions(self) -> int:
        """1 for a per-channel LUT, 3 for a cube."""
        return 1 if self.table.ndim == 2 else 3

    @property
    def size(self) -> int:
        """Entries per axis."""
        return self.table.shape[0]

    @classmethod
    def identity(cls, size: int = 33, dimensions: int = 3) -> LUT:
        """The LUT that changes nothing (handy in tests and as a neutral profile)."""
        ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
        if dimensions == 1:
            return cls(table=np.stack([ramp] * 3, axis=-1), name="identity")
        r, g, b = np.meshgrid(ramp, ramp, ramp, indexing="ij")
        return cls(table=np.stack([r, g, b], axis=-1), name="identity")

    def apply_float(self, rgb: np.ndarray, method: str = "tetrahedral") -> np.ndarray:
        """Apply to float RGB ``(..., 3)``; returns float32 of the same shape (not clipped)."""
        rgb = np.asarray(rgb, dtype=np.float32)
        if self.shaper is not None:
            rgb = self.shaper.apply_float(rgb, method)
        if self.dimensions == 1:
            lo, hi = self.domain
            unit = (rgb - lo) / (hi - lo)  # domain -> [0, 1] per channel
            xs = np.linspace(0.0, 1.0, self.size, dtype=np.float32)
            out = np.empty_like(unit)
            for c in range(3):
                out[..., c] = np.interp(unit[..., c], xs, self.table[:, c])
            return out
        kernel = INTERPOLATORS[_check_method(method)]
        flat = rgb.reshape(-1, 3)
        out = np.empty_like(flat)
        planes, n, domain = self.planes, self.size, self._domain_or_none
        for s in range(0, flat.shape[0], _CHUNK):
            out[s : s + _CHUNK] = kernel(flat[s : s + _CHUNK], planes, n, domain)
        return out.reshape(rgb.shape)

    @property
    def _domain_or_none(self) -> np.ndarray | None:
        """The domain, or ``None`` when it is the unit cube (nothing to map)."""
        lo, hi = self.domain
        return None if (lo == 0).all() and (hi == 1).all() else self.domain

    @property
    def planes(self) -> np.ndarray:
        """A 3D table as ``(3, N**3)`` float32, one contiguous row per output channel (what
        the numpy kernels gather from); made once."""
        planes = self.__dict__.get("_planes")
        if planes is None:
            planes = np.ascontiguousarray(self.table.reshape(-1, 3).T)
            object.__setattr__(self, "_planes", planes)
        return planes

    def __repr__(self) -> str:
        kind = f"{self.size}-point cube" if self.dimensions == 3 else f"1D, {self.size} entries"
        shaper = f", shaper={self.shaper!r}" if self.shaper is not None else ""
        return f"LUT(name={self.name!r}, {kind}, domain={self.domain.tolist()}{shaper})"


def _check_method(method: str) -> str:
    if method not in INTERPOLATORS:
        raise ValueError(f"unknown interpolation method {method!r}; use one of {', '.join(INTERPOLATORS)}")
    return method


def _cell(points: np.ndarray, n: int, domain: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Where ``points`` ``(N, 3)`` fall in an ``n``-point cube spanning ``domain`` ``(2, 3)``
    (``None``: the unit cube); points outside it are clipped to it.

    Returns ``(base, frac)``: the flat index of each point's cell corner 000 (``r*n*n + g*n + b``,
    ``intp``) and its fractional position in the cell, planar ``(3, N)`` float32 (one contiguous
    row per axis, which is what makes the kernels below fast in numpy).
    """
    x = np.array(points.T, dtype=np.float32, order="C")  # (3, N), a private copy: changed in place
    if domain is not None:  # domain -> [0, 1], per row (as fast as the rest; (N, 3) broadcasting is not)
        lo, hi = domain
        for c in range(3):
            x[c] -= lo[c]
            x[c] /= hi[c] - lo[c]
    np.clip(x, 0.0, 1.0, out=x)
    x *= np.float32(n - 1)
    corner = np.floor(x)
    np.minimum(corner, np.float32(n - 2), out=corner)  # the last point lies in the last cell
    x -= corner
    i0 = corner.astype(np.intp)
    base = i0[0] * (n * n)
    base += i0[1] * n
    base += i0[2]
    return base, x


def _weighted(planes: np.ndarray, corners: list[np.ndarray], weights: list[np.ndarray]) -> np.ndarray:
    """``sum_k weights[k] * table[corners[k]]`` per channel; ``planes`` is the table as ``(3, n**3)``."""
    out = np.empty((corners[0].shape[0], 3), np.float32)
    acc = np.empty(corners[0].shape[0], np.float32)
    tmp = np.empty_like(acc)
    for c in range(3):
        plane = planes[c]
        np.take(plane, corners[0], out=acc, mode="clip")  # the indices are in range; "clip" is unbuffered
        acc *= weights[0]
        for idx, w in zip(corners[1:], weights[1:], strict=True):
            np.take(plane, idx, out=tmp, mode="clip")
            tmp *= w
            acc += tmp
        out[:, c] = acc
    return out


def tetrahedral_weights(
    points: np.ndarray, n: int, domain: np.ndarray | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The tetrahedral interpolation of ``points`` ``(N, 3)`` in an ``n``-point cube over
    ``domain`` (see :func:`_cell`), as the 4 lattice corners (flat indices ``r*n*n + g*n + b``)
    and weights of each point: a lookup is linear in the table, which is what lets
    :mod:`brandstudio.style` fit a table with the very kernel a grade applies.

    The cell is split into six tetrahedra sharing the main diagonal; the one holding the point
    is given by the order of its fractional coordinates. Its four vertices are corner 000,
    000 + the axis of the largest fraction, 111 - the axis of the smallest, and 111, weighted
    ``1 - f_max``, ``f_max - f_mid``, ``f_mid - f_min`` and ``f_min``. Ties may pick either
    axis: the weights of the vertices that differ are then 0.
    """
    base, (fr, fg, fb) = _cell(points, n, domain)
    fmax = np.maximum(fr, fg)
    np.maximum(fmax, fb, out=fmax)
    fmin = np.minimum(fr, fg)
    np.minimum(fmin, fb, out=fmin)
    fmid = fr + fg
    fmid += fb
    fmid -= fmax
    fmid -= fmin
    sr, sg, sb = np.intp(n * n), np.intp(n), np.intp(1)
    # the axis of the largest fraction (r first on ties) and of the smallest (b first on ties):
    # they differ unless all three are equal, when both middle weights are 0
    v1 = np.where(fr == fmax, sr, np.where(fg == fmax, sg, sb))
    v1 += base
    v2 = np.where(fb == fmin, sr + sg, np.where(fg == fmin, sr + sb, sg + sb))
    v2 += base
    v3 = base + (sr + sg + sb)
    w1 = fmax - fmid
    w2 = fmid - fmin
    w0 = np.subtract(np.float32(1.0), fmax, out=fmax)
    return [base, v1, v2, v3], [w0, w1, w2, fmin]


def trilinear_weights(
    points: np.ndarray, n: int, domain: np.ndarray | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The trilinear interpolation of ``points``: its 8 lattice corners and weights per point
    (see :func:`tetrahedral_weights`)."""
    base, (fr, fg, fb) = _cell(points, n, domain)
    one = np.float32(1.0)
    corners, weights = [], []
    for dr, wr in ((0, one - fr), (1, fr)):
        for dg, wg in ((0, one - fg), (1, fg)):
            w_rg = wr * wg
            for db, wb in ((0, one - fb), (1, fb)):
                corners.append(base + (dr * n * n + dg * n + db))
                weights.append(w_rg * wb)
    return corners, weights


def _tetrahedral(points: np.ndarray, planes: np.ndarray, n: int, domain: np.ndarray | None = None) -> np.ndarray:
    """Tetrahedral interpolation of ``points`` ``(N, 3)`` in the table ``planes`` (``(3, n**3)``,
    :attr:`LUT.planes`)."""
    return _weighted(planes, *tetrahedral_weights(points, n, domain))


def _trilinear(points: np.ndarray, planes: np.ndarray, n: int, domain: np.ndarray | None = None) -> np.ndarray:
    """Trilinear interpolation of ``points`` ``(N, 3)`` in the table ``planes``."""
    return _weighted(planes, *trilinear_weights(points, n, domain))


#: interpolation methods for 3D LUTs, by name
INTERPOLATORS = {"tetrahedral": _tetrahedral, "trilinear": _trilinear}
#: each method's lattice corners and weights per point (a lookup is ``sum(weight * table[corner])``)
INTERPOLATION_WEIGHTS = {"tetrahedral": tetrahedral_weights, "trilinear": trilinear_weights}
for _name, _kernel in INTERPOLATORS.items():
    LUT_INTERPOLATIONS.register(_name, _kernel)


#: LUTs already read, by (path, size, modification time): a profile's LUT is read when the profile
#: is loaded (to validate it) and again by every render; parsing a 33-point .cube costs 50-200 ms
_READ: OrderedDict[tuple[str, int, int], LUT] = OrderedDict()
_READ_LOCK = threading.Lock()
_READ_MAX = 8


def read_lut(path: str | Path) -> LUT:
    """Read a ``.cube`` (or any format colour-science reads) into a :class:`LUT`.

    Raises :class:`~brandstudio.errors.AssetError` if the file is missing, unreadable, or
    its table holds NaN/inf. The same file, unchanged (size and modification time), gives the
    same (read-only) :class:`LUT` object again without parsing it.

    Example:
        >>> import tempfile, colour, os
        >>> d = tempfile.mkdtemp()
        >>> colour.io.write_LUT(colour.LUT3D(colour.LUT3D.linear_table(9), name="x"), os.path.join(d, "x.cube"))
        True
        >>> lut = read_lut(os.path.join(d, "x.cube"))
        >>> lut.dimensions, lut.size
        (3, 9)
    """
    path = Path(path)
    st = check_user_file(
        path, error=AssetError, what="the LUT", limit=MAX_LUT_BYTES,
        missing_fix="check the path, relative to the profile",
    )  # fmt: skip
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _READ_LOCK:
        if key in _READ:
            _READ.move_to_end(key)
            return _READ[key]
    lut = _parse_lut(path)
    with _READ_LOCK:
        _READ[key] = lut
        while len(_READ) > _READ_MAX:
            _READ.popitem(last=False)
    return lut


#: a ``.cube`` keyword line that declares the table's size
_CUBE_SIZE = re.compile(r"^[ \t]*(LUT_3D_SIZE|LUT_1D_SIZE)[ \t]+(\S+)", re.MULTILINE)
#: a ``.cube`` data line: it starts with a number (or a non-finite one, refused after parsing)
_CUBE_ROW = re.compile(r"^[ \t]*(?:[-+.0-9]|(?i:nan|inf))", re.MULTILINE)


def check_cube(path: Path) -> None:
    """Check a ``.cube`` file's declared sizes against the limits and against its rows, before
    colour-science parses it (it allocates the declared size: ``LUT_3D_SIZE 10000`` would be
    a trillion entries).

    Raises :class:`~brandstudio.errors.AssetError` naming the limit and how to raise it.
    """
    text = read_user_text(path, limit=MAX_LUT_BYTES, error=AssetError, what="the LUT")
    declared: dict[str, int] = {}
    for keyword, raw in _CUBE_SIZE.findall(text):
        limit = MAX_LUT_SIZE if keyword == "LUT_3D_SIZE" else MAX_LUT_1D_SIZE
        try:
            size = int(raw)
        except ValueError:
            size = -1
        if size < 2:
            raise AssetError(
                f"the LUT {path.name} declares {keyword} {raw!r}: it must be a whole number of at least 2",
                file=str(path), value=raw, fix=f"export the LUT again (the `{keyword} N` line is damaged)",
            )  # fmt: skip
        if size > limit.value():
            raise AssetError(
                f"the LUT {path.name} declares {keyword} {size}: {limit.exceeded(size)}",
                file=str(path), value=size,
                fix=f"export the LUT at a usual size (17, 33 or 65 points); or {limit.fix()}",
            )  # fmt: skip
        declared[keyword] = size
    if not declared:
        return  # colour-science says what is missing
    expected = declared.get("LUT_3D_SIZE", 0) ** 3 + declared.get("LUT_1D_SIZE", 0)
    rows = len(_CUBE_ROW.findall(text))
    if rows != expected:
        sizes = " and ".join(f"{k} {v}" for k, v in declared.items())
        raise AssetError(
            f"the LUT {path.name} declares {sizes} ({expected} rows of numbers) but holds {rows}",
            file=str(path), fix="export the LUT again (the file is truncated or its size line is wrong)",
        )  # fmt: skip


def _parse_lut(path: Path) -> LUT:
    if path.suffix.lower() == ".cube":
        check_cube(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # colour warns at import about optional matplotlib
            import colour

            raw = colour.io.read_LUT(str(path))
    except Exception as exc:  # noqa: BLE001 - colour raises many kinds (ValueError, IndexError, ...)
        raise AssetError(
            f"could not read the LUT {path.name}: {type(exc).__name__}: {exc}",
            file=str(path),
            fix="export the LUT again as a .cube file (LUT_3D_SIZE or LUT_1D_SIZE, then the table)",
        ) from None
    try:
        return _from_colour(raw, name=path.stem)
    except ValueError as exc:
        raise AssetError(
            f"the LUT {path.name} is unusable: {exc}", file=str(path), fix="export the LUT again"
        ) from None
    except MemoryError:
        raise AssetError(
            f"the LUT {path.name} is too large to hold in memory", file=str(path), fix="export it at 33 or 65 points"
        ) from None


def _from_colour(raw, name: str) -> LUT:
    import colour

    if isinstance(raw, colour.LUTSequence):
        stages = [_from_colour(item, name) for item in raw]
        if len(stages) == 1:
            return stages[0]
        if len(stages) == 2 and stages[0].dimensions == 1 and stages[1].shaper is None:
            return LUT(stages[1].table, stages[1].domain, name, shaper=stages[0])
        raise ValueError(f"a sequence of {len(stages)} LUTs is not supported (use a shaper + a cube at most)")
    domain = np.asarray(raw.domain, dtype=np.float64)
    if domain.shape != (2, 3) or (hasattr(raw, "is_domain_explicit") and raw.is_domain_explicit()):
        raise ValueError("LUTs with an explicit (non-uniform) domain are not supported")
    table = np.asarray(raw.table, dtype=np.float64)
    if isinstance(raw, colour.LUT1D):
        table = np.stack([table] * 3, axis=-1)
    return LUT(table=table, domain=domain, name=name)


#: where the grade runs, by name: ``"numpy"`` (CPU kernels + baked table), ``"torch"``
#: (:mod:`brandstudio.post.grade_torch`, on ``device``), ``"auto"`` (torch on CUDA when
#: available, else numpy)
BACKENDS = ("auto", "numpy", "torch")


@dataclass(frozen=True, eq=False)
class Grade(Effect):
    """Grade frames through a LUT, blended with the original by ``strength``.

    ``out = (1 - strength) * in + strength * lut(in)``, rounded to 8 bits.

    Args:
        lut: from :func:`read_lut` or :class:`LUT`.
        strength: 0 (no change) .. 1 (the full LUT).
        method: ``"tetrahedral"`` (default, what grading tools use) or ``"trilinear"``.
        backend: ``"auto"`` (default: torch on a CUDA GPU when there is one and torch is
            already imported, as in a render; else numpy),
            ``"numpy"`` or ``"torch"`` (see :data:`BACKENDS`).
        device: the torch device for ``backend="torch"`` (``"auto"``: CUDA when available).
        cache: where baked tables are kept on disk: ``None`` for the default
            (:func:`brandstudio.post.lut_cache.default_lut_cache_dir`), a directory, a
            :class:`~brandstudio.post.lut_cache.LutCache`, or ``False`` for none.

    Example:
        >>> import numpy as np
        >>> g = Grade(LUT.identity(3), strength=1.0, method="trilinear", cache=False)
        >>> g.apply(np.zeros((1, 2, 2, 3), np.uint8)).shape
        (1, 2, 2, 3)
        >>> Grade(LUT.identity(3), backend="torch", device="cpu").apply(np.full((1, 1, 1, 3), 7, np.uint8)).ravel().tolist()
        [7, 7, 7]
    """

    lut: LUT
    strength: float = 1.0
    method: Literal["tetrahedral", "trilinear"] = "tetrahedral"
    backend: Literal["auto", "numpy", "torch"] = "auto"
    device: str = "auto"
    cache: object = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_bake_lock", threading.Lock())  # one bake at a time (see bake_ahead)
        if not 0.0 <= float(self.strength) <= 1.0:
            raise ValueError(f"`strength` must be between 0 and 1, got {self.strength}")
        _check_method(self.method)
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown grade backend {self.backend!r}; use one of {', '.join(BACKENDS)}")

    def _grade_chunk(self, pixels: np.ndarray, out: np.ndarray) -> None:
        """Grade ``(n, 3)`` uint8 ``pixels`` (any strides) into ``out``, the direct kernel, on this thread."""
        src = pixels.astype(np.float32) * np.float32(1 / 255)
        graded = self.lut.apply_float(src, self.method)
        s = np.float32(self.strength)
        if s < 1:
            graded = src + s * (graded - src)
        out[...] = np.clip(np.rint(graded * 255.0), 0, 255).astype(np.uint8)

    def _grade_uint8(self, pixels: np.ndarray) -> np.ndarray:
        """``(n, 3)`` uint8 -> ``(n, 3)`` uint8, the direct kernel, chunks spread over CPU threads."""
        out = np.empty_like(pixels)
        _parallel(
            lambda a: self._grade_chunk(pixels[a : a + _CHUNK], out[a : a + _CHUNK]),
            range(0, pixels.shape[0], _CHUNK),
        )
        return out

    def _disk(self):
        """The :class:`LutCache` to use, or ``None``."""
        if self.cache is False:
            return None

        return self.cache if isinstance(self.cache, LutCache) else LutCache(self.cache)

    def _key(self) -> str:
        key = self.__dict__.get("_bake_key")
        if key is None:

            key = bake_key(self.lut, self.strength, self.method)
            object.__setattr__(self, "_bake_key", key)
        return key

    def cached_table(self) -> np.ndarray | None:
        """The baked table if it is in memory or in the disk cache (no baking), else ``None``."""
        table = self.__dict__.get("_baked")
        if table is None and (disk := self._disk()) is not None:
            table = disk.get(self._key())
            if table is not None:
                object.__setattr__(self, "_baked", table)
        return table

    def baked(self) -> np.ndarray:
        """The whole grade as a ``(256**3, 3)`` uint8 table indexed by ``r | g << 8 | b << 16``.

        Read from the disk cache when it is there; otherwise baked (16.7 M interpolations,
        about 0.6 s on two cores) and stored for the next render.
        """
        with self._bake_lock:  # a bake started by bake_ahead() is waited for, not repeated
            return self._baked_locked()

    def _baked_locked(self) -> np.ndarray:
        table = self.cached_table()
        if table is None:
            table = self._bake()
            object.__setattr__(self, "_baked", table)
            if (disk := self._disk()) is not None:
                disk.put(self._key(), table)
        return table

    def _bake(self) -> np.ndarray:
        """Grade every 8-bit colour: the ``(256**3, 3)`` table, made a chunk at a time on CPU threads."""
        table = np.empty((256**3, 3), np.uint8)

        def bake(start: int) -> None:
            # row i holds the grade of (r, g, b) = the low three bytes of i (little-endian)
            rows = np.arange(start, start + _CHUNK, dtype="<u4").view(np.uint8).reshape(-1, 4)[:, :3]
            self._grade_chunk(rows, table[start : start + _CHUNK])

        _parallel(bake, range(0, 256**3, _CHUNK))
        return table

    def _use_torch(self) -> bool:
        if self.backend == "numpy":
            return False
        if self.backend == "torch":
            return True

        # "auto": torch only on a CUDA GPU (on a CPU the baked numpy table is faster), and only
        # when torch is already loaded (as in a render): grading alone never pays torch's import
        if "torch" not in sys.modules:
            return False
        import torch

        return self.device != "cpu" and torch.cuda.is_available()

    def will_bake(self, shape: tuple[int, ...]) -> bool:
        """Whether grading a clip of ``shape`` ``(T, H, W, 3)`` uses the baked table (numpy
        backend, a clip of at least 16.7 M pixels) rather than the direct kernel."""
        return self.strength != 0 and not self._use_torch() and int(np.prod(shape[:-1])) >= _BAKE_THRESHOLD

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Told once that a clip of ``shape`` ``(T, H, W, 3)`` will be graded in chunks
        (:mod:`brandstudio.post.stream`): bakes the table when grading that clip whole would,
        so every chunk gets exactly the pixels a whole-clip :meth:`apply` gives."""
        if self.will_bake(shape):
            self.baked()

    def bake_ahead(self, shape: tuple[int, ...]) -> threading.Thread | None:
        """Start making the table a clip of ``shape`` will need, on a background thread.

        A render calls this before generation: the table is read from the disk cache, or baked,
        while the GPU generates, so the post stage finds it ready. A later :meth:`baked` (from
        :meth:`prepare`) waits for this bake instead of starting its own. Returns the thread, or
        ``None`` when the clip will not use the table or it is already in memory. An error in the
        background is left for the post stage's own :meth:`baked` to raise.

        Example:
            >>> import numpy as np
            >>> g = Grade(LUT.identity(3), cache=False, backend="numpy")
            >>> g.bake_ahead((1, 8, 8, 3)) is None   # a small clip grades directly, nothing to bake
            True
        """
        if not self.will_bake(shape) or self.__dict__.get("_baked") is not None:
            return None

        def bake() -> None:
            try:
                self.baked()
            except Exception:  # noqa: BLE001 - the post stage bakes again and reports it
                pass

        thread = threading.Thread(target=bake, name="brandstudio-lut-bake", daemon=True)
        thread.start()
        return thread

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Grade ``(T, H, W, 3)`` uint8 frames; returns new frames."""
        frames = check_frames(frames)
        if self.strength == 0:
            return frames.copy()
        if self._use_torch():
            from .grade_torch import grade_uint8_torch

            return grade_uint8_torch(frames, self.lut, self.strength, self.method, self.device)
        pixels = frames.reshape(-1, 3)
        if pixels.shape[0] < _BAKE_THRESHOLD and self.cached_table() is None:
            return self._grade_uint8(pixels).reshape(frames.shape)
        return _lookup(self.baked(), frames)


def _lookup(table: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Grade ``frames`` ``(..., 3)`` uint8 through a baked ``(256**3, 3)`` table (one gather per pixel).

    The index ``r | g << 8 | b << 16`` is read straight from the pixel bytes: a little-endian
    uint32 view with a 3-byte stride sees ``r, g, b`` and the next pixel's red, which the mask
    drops (the last pixel, which has no next byte, is done on its own). Pixels go in blocks of
    :data:`_LOOKUP_BLOCK` through one small index buffer per thread, so grading allocates
    nothing but its output.
    """
    frames = np.ascontiguousarray(frames)
    out = np.empty_like(frames)
    flat_in, flat_out = frames.reshape(-1), out.reshape(-1, 3)
    n = flat_in.size // 3
    words = np.ndarray((n - 1,), dtype="<u4", buffer=flat_in, strides=(3,))
    step = 4 * _CHUNK

    def run(start: int) -> None:
        stop = min(start + step, n - 1)
        idx = np.empty(min(_LOOKUP_BLOCK, stop - start), np.intp)
        for a in range(start, stop, _LOOKUP_BLOCK):
            b = min(a + _LOOKUP_BLOCK, stop)
            np.bitwise_and(words[a:b], np.uint32(0xFFFFFF), out=idx[: b - a])
            np.take(table, idx[: b - a], axis=0, out=flat_out[a:b], mode="clip")

    _parallel(run, range(0, n - 1, step))
    r, g, b = (int(c) for c in flat_in[-3:])
    flat_out[-1] = table[r | g << 8 | b << 16]
    return out


def _parallel(fn, starts) -> None:
    """Run ``fn(start)`` for each chunk on a few threads (numpy releases the GIL in the heavy parts)."""
    starts = list(starts)
    workers = min(len(starts), os.cpu_count() or 1, 8)
    if workers <= 1:
        for start in starts:
            fn(start)
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, starts))


ASSET_CHECKS.register("lut", read_lut)
