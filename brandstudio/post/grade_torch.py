"""The LUT grade on torch tensors: the same tetrahedral / trilinear kernels as :mod:`.grade`, on any device.

This is the GPU path of :class:`brandstudio.post.grade.Grade` (``backend="torch"``, or
``"auto"`` when CUDA is available). On a GPU the direct kernel is cheap enough that no bake
is needed: 8-bit frames go up, are graded in float32 a chunk at a time, and come back as
8-bit frames; the LUT table stays on the device between chunks. On a CPU it works too (the
tests check it against colour-science there) but the numpy backend's baked table is faster.

The arithmetic follows :func:`brandstudio.post.grade._tetrahedral` step for step (cell from
the integer part, tetrahedron from the order of the fractional parts, four weighted
vertices), so both backends agree with ``colour.LUT3D.apply`` to within 1/255 on 8-bit output.

Example:
    >>> import numpy as np
    >>> from brandstudio.post.grade import LUT
    >>> from brandstudio.post.grade_torch import grade_uint8_torch
    >>> px = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    >>> bool((grade_uint8_torch(px, LUT.identity(5), 1.0, "tetrahedral", "cpu") == px).all())
    True
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["apply_lut_torch", "grade_uint8_torch", "resolve_device"]

#: pixels per chunk on the device (bounds temporaries to ~0.5 GB)
_CHUNK = 1 << 22


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as torch understands it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _tetrahedral(unit: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    n = table.shape[0]
    flat = table.reshape(-1, 3)
    x = unit.clamp(0.0, 1.0) * (n - 1)
    i0 = x.to(torch.int64).clamp_max(n - 2)
    f = x - i0
    strides = torch.tensor([n * n, n, 1], dtype=torch.int64, device=unit.device)
    base = (i0 * strides).sum(dim=1)
    fmax, amax = f.max(dim=1)
    fmin, amin = f.min(dim=1)
    fmid = f.sum(dim=1) - fmax - fmin
    diag = n * n + n + 1
    out = (1.0 - fmax)[:, None] * flat[base]
    out += (fmax - fmid)[:, None] * flat[base + strides[amax]]
    out += (fmid - fmin)[:, None] * flat[base + diag - strides[amin]]
    out += fmin[:, None] * flat[base + diag]
    return out


def _trilinear(unit: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    n = table.shape[0]
    flat = table.reshape(-1, 3)
    x = unit.clamp(0.0, 1.0) * (n - 1)
    i0 = x.to(torch.int64).clamp_max(n - 2)
    f = x - i0
    base = i0[:, 0] * (n * n) + i0[:, 1] * n + i0[:, 2]
    fr, fg, fb = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    out = torch.zeros_like(f)
    for dr, wr in ((0, 1.0 - fr), (1, fr)):
        for dg, wg in ((0, 1.0 - fg), (1, fg)):
            for db, wb in ((0, 1.0 - fb), (1, fb)):
                out += (wr * wg * wb) * flat[base + (dr * n * n + dg * n + db)]
    return out


def _interp_1d(unit: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Per-channel linear interpolation in an ``(N, 3)`` table (like ``np.interp``, clamped)."""
    n = table.shape[0]
    x = unit.clamp(0.0, 1.0) * (n - 1)
    i0 = x.to(torch.int64).clamp_max(n - 2)
    f = x - i0
    lo = torch.gather(table, 0, i0)
    hi = torch.gather(table, 0, i0 + 1)
    return lo + f * (hi - lo)


_KERNELS = {"tetrahedral": _tetrahedral, "trilinear": _trilinear}


def apply_lut_torch(
    rgb: torch.Tensor, lut, method: str = "tetrahedral", tables: dict | None = None
) -> torch.Tensor:
    """Apply ``lut`` (a :class:`brandstudio.post.grade.LUT`) to float RGB ``(n, 3)`` on ``rgb``'s device.

    ``tables`` caches the LUT's tensors on the device between calls (keyed by ``id``).
    """
    tables = {} if tables is None else tables
    device = rgb.device

    def on_device(arr: np.ndarray) -> torch.Tensor:
        key = (id(arr), str(device))
        if key not in tables:
            tables[key] = torch.tensor(arr, dtype=torch.float32, device=device)  # a copy: LUT arrays are read-only
        return tables[key]

    if lut.shaper is not None:
        rgb = apply_lut_torch(rgb, lut.shaper, method, tables)
    domain = on_device(lut.domain)
    unit = (rgb - domain[0]) / (domain[1] - domain[0])
    table = on_device(lut.table)
    if lut.dimensions == 1:
        return _interp_1d(unit, table)
    return _KERNELS[method](unit, table)


@torch.inference_mode()
def grade_uint8_torch(frames: np.ndarray, lut, strength: float, method: str, device="auto") -> np.ndarray:
    """Grade uint8 ``(..., 3)`` pixels with ``lut`` blended by ``strength`` on ``device``; returns uint8.

    ``out = round(255 * ((1 - s) * x + s * lut(x)))`` with ``x = pixel / 255``, computed in float32.
    """
    dev = resolve_device(device)
    pixels = np.ascontiguousarray(frames).reshape(-1, 3)
    out = np.empty_like(pixels)
    s = float(strength)
    tables: dict = {}
    pin = dev.type == "cuda"
    for start in range(0, pixels.shape[0], _CHUNK):
        src = torch.from_numpy(pixels[start : start + _CHUNK])
        if pin:
            src = src.pin_memory()
        x = src.to(dev, non_blocking=pin).to(torch.float32) * (1.0 / 255.0)
        y = apply_lut_torch(x, lut, method, tables)
        if s < 1.0:
            y = x + s * (y - x)
        out[start : start + _CHUNK] = (y * 255.0).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()
    return out.reshape(np.shape(frames))
