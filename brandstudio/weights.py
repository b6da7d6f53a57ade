"""Weight files checked finite: every tensor of a LoRA, an upscaler or an interpolator, once per file.

A LoRA trained into NaN (a learning rate too high, an fp16 overflow) loads without complaint and
renders black frames; an upscaler with an ``inf`` in one convolution turns every frame it touches
into garbage. Nothing in safetensors or torch refuses such a file, so brandstudio reads every
tensor once and checks that all its values are finite (no NaN, no ±inf) when the profile is
validated, before any render:

* :func:`check_finite` raises :class:`~brandstudio.errors.AssetError` naming the file, the first
  bad tensors and how many of their values are bad, with the fix.
* The verdict is cached by the file's SHA-256 (:func:`~brandstudio.files.sha256_file`) under
  :func:`weights_cache_dir` (``$BRANDSTUDIO_WEIGHTS_CACHE``, else
  ``$BRANDSTUDIO_HOME/weights-checked``): a file that passed once is hashed, not read again
  (hashing is I/O bound; reading and checking every tensor is not). Only passing verdicts are
  cached: a bad file is read (and refused) again, so replacing it is all it takes.

Readers: a ``.safetensors`` file is checked on its raw bytes, with numpy and no torch (so that
validating a profile never loads torch): the format is a JSON header of tensor names, dtypes and
byte offsets, then the data; a float is NaN or ±inf exactly when its exponent bits are all ones,
which a bit mask finds for every float dtype safetensors stores (f64, f32, f16, bf16, and fp8
E5M2; fp8 E4M3 has no inf and one NaN pattern), read through a memory map a slice at a time.
A header that does not parse falls back to safetensors' own torch reader, which reports it.
Anything else goes through ``torch.load(weights_only=True)`` (tensors and plain containers
only: a pickle that would run code is refused by torch). A stage that already has its own safe
reader passes it as ``read`` (:mod:`brandstudio.post.sr` does).

Example:
    >>> import os, tempfile, torch
    >>> from safetensors.torch import save_file
    >>> os.environ["BRANDSTUDIO_WEIGHTS_CACHE"] = tempfile.mkdtemp()
    >>> path = os.path.join(tempfile.mkdtemp(), "look.safetensors")
    >>> save_file({"a": torch.ones(4), "b": torch.tensor([1.0, float("nan"), float("inf")])}, path)
    >>> nonfinite_tensors(path)
    [BadTensor(name='b', nan=1, inf=1, total=3)]
    >>> try:
    ...     check_finite(path, what="LoRA")
    ... except AssetError as exc:
    ...     print(exc.message)
    LoRA `look.safetensors` holds non-finite values (NaN or ±inf), which render black or broken frames: tensor `b` has 2 of 3 values non-finite (1 NaN, 1 ±inf)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AssetError
from .files import brandstudio_home, sha256_file, write_json_atomic

__all__ = [
    "WEIGHTS_CACHE_ENV",
    "BadTensor",
    "check_finite",
    "count_nonfinite",
    "nonfinite_tensors",
    "read_tensors",
    "safetensors_bytes",
    "weights_cache_dir",
]

#: the environment variable that moves the cache of finite verdicts (tests point it at a temp dir)
WEIGHTS_CACHE_ENV = "BRANDSTUDIO_WEIGHTS_CACHE"

#: bumped when what "checked" means changes, so older verdicts are not trusted
_CHECK_VERSION = 1
#: bad tensors named in an error (the rest are counted)
_SHOWN = 3

Reader = Callable[[Path], Iterable[tuple[str, Any]]]


@dataclass(frozen=True)
class BadTensor:
    """A tensor with non-finite values: its name, how many are NaN, how many ±inf, of how many."""

    name: str
    nan: int
    inf: int
    total: int

    @property
    def bad(self) -> int:
        return self.nan + self.inf

    def describe(self) -> str:
        """``tensor `x` has 2 of 3 values non-finite (1 NaN, 1 ±inf)``"""
        return (
            f"tensor `{self.name}` has {self.bad} of {self.total} values non-finite "
            f"({self.nan} NaN, {self.inf} ±inf)"
        )


def weights_cache_dir() -> Path:
    """Where finite verdicts are kept: ``$BRANDSTUDIO_WEIGHTS_CACHE``, else
    ``$BRANDSTUDIO_HOME/weights-checked`` (``~/.cache/brandstudio/weights-checked``)."""
    override = os.environ.get(WEIGHTS_CACHE_ENV)
    return Path(override).expanduser() if override else brandstudio_home() / "weights-checked"


def read_tensors(path: str | Path) -> Iterator[tuple[str, Any]]:
    """``(name, tensor)`` for every tensor of a weight file, one at a time for ``.safetensors``.

    Non-safetensors files are read with ``torch.load(weights_only=True)`` and walked (nested
    dicts and lists, such as BasicSR's ``params_ema``), names joined with ``.``.
    """
    import torch  # heavy: only when a file is actually read

    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            for name in fh.keys():
                yield name, fh.get_tensor(name)
        return
    yield from _walk(torch.load(str(path), map_location="cpu", weights_only=True), "")


def _walk(obj: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    import torch

    if isinstance(obj, torch.Tensor):
        yield prefix or "(tensor)", obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _walk(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _walk(value, f"{prefix}.{i}" if prefix else str(i))


def count_nonfinite(tensor: Any) -> tuple[int, int]:
    """``(NaN count, ±inf count)`` of a torch tensor; integer and bool tensors are always finite."""
    import torch

    if not (tensor.is_floating_point() or tensor.is_complex()):
        return 0, 0
    if tensor.element_size() == 1:  # fp8: isnan/isinf are not implemented for it on every device
        tensor = tensor.float()
    nan = int(torch.isnan(tensor).sum())
    inf = int(torch.isinf(tensor).sum())
    return nan, inf


def nonfinite_tensors(path: str | Path, *, read: Reader | None = None) -> list[BadTensor]:
    """Every tensor of ``path`` that holds a NaN or ±inf (empty when the file is sound).

    ``read`` yields ``(name, tensor)`` pairs (default: :func:`read_tensors`). No cache: this
    always reads the file (see :func:`check_finite`).
    """
    path = Path(path)
    if read is None and path.suffix.lower() == ".safetensors":
        scanned = _scan_safetensors(path)
        if scanned is not None:
            return scanned
    bad = []
    for name, tensor in (read or read_tensors)(path):
        nan, inf = count_nonfinite(tensor)
        if nan or inf:
            bad.append(BadTensor(name, nan, inf, int(tensor.numel())))
    return bad


#: safetensors float dtypes: (unsigned view, exponent mask, mantissa mask); NaN/inf = exponent all ones
_FLOAT_BITS = {
    "F64": (np.uint64, 0x7FF0000000000000, 0x000FFFFFFFFFFFFF),
    "F32": (np.uint32, 0x7F800000, 0x007FFFFF),
    "F16": (np.uint16, 0x7C00, 0x03FF),
    "BF16": (np.uint16, 0x7F80, 0x007F),
    "F8_E5M2": (np.uint8, 0x7C, 0x03),
    "F8_E4M3": (np.uint8, 0x78, 0x07),  # no inf: the one NaN pattern is exponent and mantissa all ones
}
#: elements checked at a time (bounds the temporary masks of a large tensor)
_SCAN_CHUNK = 1 << 24


def _scan_safetensors(path: Path) -> list[BadTensor] | None:
    """The non-finite tensors of a ``.safetensors`` file from its raw bytes, or None when its
    header does not parse (then the torch reader reports the damage)."""
    try:
        with open(path, "rb") as fh:
            (length,) = np.frombuffer(fh.read(8), "<u8")
            header = json.loads(fh.read(int(length)))
        data = np.memmap(path, np.uint8, mode="r", offset=8 + int(length)) if path.stat().st_size > 8 + length else None
        entries = [(k, v) for k, v in header.items() if k != "__metadata__"]
        spans = [(k, v["dtype"], *map(int, v["data_offsets"]), int(np.prod(v["shape"], dtype=np.int64))) for k, v in entries]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    bad = []
    for name, dtype, begin, end, count in spans:
        if dtype not in _FLOAT_BITS or count == 0:
            continue  # integers and bools are always finite
        view, exponent, mantissa = _FLOAT_BITS[dtype]
        width = np.dtype(view).itemsize
        if data is None or end - begin != count * width or end > len(data):
            return None  # offsets that do not fit the file: let the torch reader say so
        bits = data[begin:end].view(f"<u{width}")
        nan = inf = 0
        for start in range(0, count, _SCAN_CHUNK):
            chunk = bits[start : start + _SCAN_CHUNK]
            special = (chunk & view(exponent)) == view(exponent)
            if dtype == "F8_E4M3":
                nan += int(np.count_nonzero(special & ((chunk & view(mantissa)) == view(mantissa))))
                continue
            infinite = special & ((chunk & view(mantissa)) == 0)
            inf += int(np.count_nonzero(infinite))
            nan += int(np.count_nonzero(special)) - int(np.count_nonzero(infinite))
        if nan or inf:
            bad.append(BadTensor(name, nan, inf, count))
    return bad


def _verdict_path(digest: str) -> Path:
    return weights_cache_dir() / f"{digest}.finite.json"


def _known_finite(marker: Path) -> bool:
    """Whether ``marker`` records a passing check of this check's version (a damaged one does not)."""
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("version") == _CHECK_VERSION and data.get("finite") is True


def check_finite(
    path: str | Path,
    *,
    what: str = "weight file",
    fix: str | None = None,
    read: Reader | None = None,
    profile: str | None = None,
) -> bool:
    """Raise :class:`~brandstudio.errors.AssetError` unless every tensor of ``path`` is finite.

    Paid once per file content: a pass is recorded under :func:`weights_cache_dir` by the file's
    SHA-256, and a file with that hash is not read again. Returns ``True`` when the tensors were
    read now, ``False`` when a cached verdict was used.

    Args:
        path: the weight file.
        what: what the file is, for the message (``"LoRA"``, ``"upscaler weights"``).
        fix: how to fix a bad file (default: replace it with a sound copy).
        read: yields ``(name, tensor)`` pairs (default: :func:`read_tensors`).
        profile: the profile the file belongs to, for the message (the loader adds it otherwise).
    """
    path = Path(path)
    digest = sha256_file(path)
    marker = _verdict_path(digest)
    if _known_finite(marker):
        return False
    bad = nonfinite_tensors(path, read=read)
    if bad:
        shown = "; ".join(b.describe() for b in bad[:_SHOWN])
        more = f"; and {len(bad) - _SHOWN} more tensors" if len(bad) > _SHOWN else ""
        raise AssetError(
            f"{what} `{path.name}` holds non-finite values (NaN or ±inf), which render black or "
            f"broken frames: {shown}{more}",
            profile=profile,
            file=str(path),
            value=bad[0].name,
            fix=fix
            or "replace the file with a sound copy (download or export it again); weights that "
            "diverged in training (NaN) must be retrained or taken from an earlier checkpoint",
        )
    try:
        write_json_atomic(
            marker, {"version": _CHECK_VERSION, "finite": True, "sha256": digest, "file": path.name}
        )
    except OSError:
        pass  # a read-only cache costs a re-check next time, nothing else
    return True


def safetensors_bytes(tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> bytes:
    """``tensors`` (torch) serialized as safetensors, the same bytes for the same content.

    safetensors writes ``__metadata__`` from a hash map, whose key order varies between runs;
    the JSON header is rewritten in sorted order and padded with spaces to its original length
    (which the format allows), so the tensor data and its offsets are untouched.

    Example:
        >>> import torch
        >>> a = safetensors_bytes({"w": torch.ones(2)}, {"b": "1", "a": "2"})
        >>> a == safetensors_bytes({"w": torch.ones(2)}, {"a": "2", "b": "1"})
        True
    """
    from safetensors.torch import save

    data = save(tensors, metadata=metadata)
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    canonical = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(canonical) > n:  # cannot happen: same content, no extra whitespace
        return data
    return data[:8] + canonical.ljust(n, b" ") + data[8 + n :]
