"""Model-based super-resolution: the Real-ESRGAN family, loading the official weight files.

Two architectures, written out here in torch with the official state-dict key names
(BasicSR / Real-ESRGAN), so the published files load as they are:

* :class:`RRDBNet` (ESRGAN / Real-ESRGAN: ``RealESRGAN_x4plus.pth``,
  ``RealESRGAN_x4plus_anime_6B.pth``, ``RealESRGAN_x2plus.pth``, ...): ``conv_first``, a body
  of RRDB blocks (three 5-conv residual dense blocks each), ``conv_body``, two nearest x2
  upsampling stages (``conv_up1``, ``conv_up2``), ``conv_hr``, ``conv_last``. The x2 and x1
  variants pixel-unshuffle the input first (by 2 or 4), so they read 12 or 48 channels.
* :class:`SRVGGNetCompact` (``realesr-general-x4v3.pth``, ``realesr-animevideov3.pth``):
  3x3 convs with PReLU, a pixel shuffle, plus the nearest-upsampled input.

:func:`detect` reads the architecture, scale and widths from the state dict's keys and
shapes (``num_feat``, ``num_block``, ``num_grow_ch``, ``num_conv``, ``scale``); it needs only
the shapes, so :func:`inspect_weights` checks a ``.safetensors`` file without loading it.

Weights are untrusted input: ``.safetensors`` files are read with safetensors, ``.pth``/``.pt``
files only with ``torch.load(weights_only=True)`` (tensors and plain containers; a pickle
that would run code is refused), the BasicSR wrappers ``params_ema`` / ``params`` are
unwrapped (``params_ema`` first, as Real-ESRGAN's inference does), and anything else is
refused with an :class:`~brandstudio.errors.AssetError`. Every tensor must be finite (a NaN or
inf in one convolution ruins every frame it touches): :func:`inspect_weights` checks them once
per file content (:func:`brandstudio.weights.check_finite`, cached by SHA-256) when the profile
loads, and :class:`RealESRGAN` again on the state it loads.

Why not spandrel (which auto-detects these and many more architectures)? It requires
torchvision, whose registry build is a CUDA build that breaks the CPU torch this project
pins; two small architectures are not worth that.

Inference (:class:`RealESRGAN`) is tiled with overlap like Real-ESRGAN's ``tile_process``:
each ``tile`` x ``tile`` input tile is run with ``tile_pad`` px of real context around it
and only its own region of the output is kept, so memory is bounded and seams vanish once
the pad covers the receptive field. fp32 on CPU, bf16 on CUDA. On this 2-core CPU a
full-size RRDBNet x4 takes seconds per 256 px tile: it is a GPU feature (the tests use
tiny random models).

Example:
    >>> import torch
    >>> from brandstudio.post.sr import SRVGGNetCompact, detect
    >>> net = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2)
    >>> spec = detect(net.state_dict())
    >>> spec.arch, spec.scale, spec.num_feat, spec.num_conv
    ('srvgg', 2, 8, 2)
    >>> net(torch.zeros(1, 3, 5, 7)).shape
    torch.Size([1, 3, 10, 14])
"""

from __future__ import annotations

import functools
import math
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from brandstudio.errors import AssetError
from brandstudio.frames import check_frames
from brandstudio.weights import check_finite, nonfinite_tensors

__all__ = [
    "ARCHITECTURES",
    "RRDBNet",
    "RealESRGAN",
    "SRSpec",
    "SRVGGNetCompact",
    "build",
    "detect",
    "inspect_weights",
    "load_state_dict",
]

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt")


# -- architectures (BasicSR / Real-ESRGAN key names) ---------------------------------------


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each fed every earlier output (dense), scaled residual (x 0.2)."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, scaled residual."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN's generator as used by Real-ESRGAN (``basicsr.archs.rrdbnet_arch.RRDBNet``).

    ``scale`` 4 reads the image as is; 2 and 1 pixel-unshuffle it by 2 and 4 first, so the
    network always upsamples x4 internally. Inputs must be divisible by that factor
    (:class:`RealESRGAN` pads them).
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        super().__init__()
        self.scale = scale
        num_in_ch = num_in_ch * {4: 1, 2: 4, 1: 16}[scale]
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 2:
            feat = F.pixel_unshuffle(x, 2)
        elif self.scale == 1:
            feat = F.pixel_unshuffle(x, 4)
        else:
            feat = x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact VGG-style net (``realesrgan.archs.srvgg_arch.SRVGGNetCompact``).

    ``body`` alternates 3x3 convs and activations; the last conv makes ``3 * upscale**2``
    channels that a pixel shuffle turns into the residual over the nearest-upsampled input.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
    ) -> None:
        super().__init__()
        self.upscale = upscale

        def act() -> nn.Module:
            if act_type == "prelu":
                return nn.PReLU(num_parameters=num_feat)
            if act_type == "relu":
                return nn.ReLU(inplace=True)
            if act_type == "leakyrelu":
                return nn.LeakyReLU(negative_slope=0.1, inplace=True)
            raise ValueError(f"unknown act_type {act_type!r}; use prelu, relu or leakyrelu")

        self.body = nn.ModuleList([nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), act()])
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(act())
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


# -- detection ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SRSpec:
    """What :func:`detect` read from a state dict.

    ``scale`` is the output/input size ratio; ``multiple`` is what the input's sides must be
    divisible by (RRDBNet x2: 2, x1: 4, else 1); ``receptive`` is the receptive-field radius in
    input px (a ``tile_pad`` at least this large makes tiled output equal untiled output).
    """

    arch: str  # "rrdb" or "srvgg"
    scale: int
    num_in_ch: int
    num_out_ch: int
    num_feat: int
    num_block: int = 0  # RRDBNet
    num_grow_ch: int = 0  # RRDBNet
    num_conv: int = 0  # SRVGGNetCompact
    act_type: str = ""  # SRVGGNetCompact

    @property
    def multiple(self) -> int:
        return {2: 2, 1: 4}.get(self.scale, 1) if self.arch == "rrdb" else 1

    @property
    def receptive(self) -> int:
        if self.arch == "rrdb":  # conv_first + 15 convs per RRDB + conv_body, then 4 convs at x2/x4 (< 2 px)
            return self.multiple * (4 + 15 * self.num_block)
        return self.num_conv + 2


def _shapes(state: dict) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) if hasattr(v, "shape") else tuple(v) for k, v in state.items()}


def _rgb(channels: int, verb: str) -> None:
    if channels != 3:
        raise ValueError(
            f"a model that {verb} {channels} colour channel(s); brandstudio upscales RGB frames (3 in, 3 out)"
        )


def check_shapes(spec: SRSpec, shapes: dict) -> None:
    """Raise ``ValueError`` naming the first key that the architecture ``spec`` lacks, does
    not expect, or holds in another shape than ``shapes`` (``{key: shape}``); no weights are made."""
    with torch.device("meta"):
        want = {k: tuple(v.shape) for k, v in build(spec).state_dict().items()}
    for key, shape in want.items():
        if key not in shapes:
            raise ValueError(f"the key {key} (shape {list(shape)}) is missing")
        if tuple(shapes[key]) != shape:
            raise ValueError(
                f"{key} has shape {list(shapes[key])}, the {spec.arch} architecture needs {list(shape)}"
            )
    extra = sorted(set(shapes) - set(want))
    if extra:
        raise ValueError(f"unexpected key(s) {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}")


def detect(state: dict) -> SRSpec:
    """The architecture and its sizes from a state dict (or a ``{key: shape}`` dict).

    Raises ``ValueError`` saying what is missing when the keys fit neither architecture.
    """
    shapes = _shapes(state)
    if "conv_first.weight" in shapes:
        need = [
            "conv_body.weight",
            "conv_up1.weight",
            "conv_up2.weight",
            "conv_hr.weight",
            "conv_last.weight",
        ]
        missing = [k for k in need if k not in shapes]
        if missing:
            raise ValueError(f"an RRDBNet state dict without {', '.join(missing)}")
        num_feat, in_ch = shapes["conv_first.weight"][:2]
        num_out_ch = shapes["conv_last.weight"][0]
        blocks = {int(m.group(1)) for k in shapes if (m := re.match(r"body\.(\d+)\.rdb1\.conv1\.weight$", k))}
        if not blocks or blocks != set(range(len(blocks))):
            raise ValueError(
                "an RRDBNet state dict whose body.N.rdbM blocks are missing or not numbered 0..N-1"
            )
        num_grow_ch = shapes["body.0.rdb1.conv1.weight"][0]
        _rgb(num_out_ch, "makes")
        for factor, scale in ((1, 4), (4, 2), (16, 1)):  # x2 / x1 pixel-unshuffle by 2 / 4
            if in_ch == 3 * factor:
                return SRSpec("rrdb", scale, 3, num_out_ch, num_feat, len(blocks), num_grow_ch)
        raise ValueError(f"an RRDBNet whose conv_first reads {in_ch} channels (expected 3, 12 or 48: RGB)")
    if "body.0.weight" in shapes and len(shapes["body.0.weight"]) == 4:
        convs = sorted(int(m.group(1)) for k in shapes if (m := re.match(r"body\.(\d+)\.weight$", k)))
        last = convs[-1]
        if len(shapes[f"body.{last}.weight"]) != 4 or last % 2:
            raise ValueError("an SRVGGNetCompact state dict whose last body layer is not a conv")
        num_feat, num_in_ch = shapes["body.0.weight"][:2]
        if "body.1.weight" not in shapes:
            raise ValueError(
                "an SRVGGNetCompact without PReLU weights (body.1.weight): only the PReLU variant "
                "(all official files) is supported"
            )
        num_conv = (last - 2) // 2
        out = shapes[f"body.{last}.weight"][0]
        _rgb(num_in_ch, "reads")
        scale = math.isqrt(out // 3) if out % 3 == 0 else 0
        if scale >= 1 and scale * scale * 3 == out:
            return SRSpec("srvgg", scale, 3, 3, num_feat, num_conv=num_conv, act_type="prelu")
        raise ValueError(
            f"an SRVGGNetCompact whose last conv makes {out} channels (expected 3 x scale²: RGB)"
        )
    if any(k.startswith("model.") for k in shapes):
        raise ValueError(
            "the old ESRGAN key layout (model.0.weight, ...); convert it to the BasicSR layout "
            "(conv_first, body.N.rdbM, ...) first"
        )
    raise ValueError(
        "neither an RRDBNet (conv_first.weight, body.N.rdbM.convK) nor an SRVGGNetCompact "
        "(body.N.weight) state dict"
    )


#: architectures by name: spec -> an empty module with matching keys
ARCHITECTURES = {
    "rrdb": lambda s: RRDBNet(s.num_in_ch, s.num_out_ch, s.scale, s.num_feat, s.num_block, s.num_grow_ch),
    "srvgg": lambda s: SRVGGNetCompact(
        s.num_in_ch, s.num_out_ch, s.num_feat, s.num_conv, s.scale, s.act_type
    ),
}


def build(spec: SRSpec) -> nn.Module:
    """An untrained module of the architecture and sizes in ``spec``."""
    return ARCHITECTURES[spec.arch](spec)


# -- weight files --------------------------------------------------------------------------


_NONFINITE_FIX = (
    "download the official Real-ESRGAN weights again (or export yours again from a sound checkpoint)"
)


def _refuse(path: Path, why: str, fix: str) -> AssetError:
    return AssetError(
        f"cannot use the upscaler weights {path.name}: {why}", file=str(path), value=path.name, fix=fix
    )


def _unwrap(obj, path: Path) -> dict:
    if isinstance(obj, dict):
        for key in ("params_ema", "params", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ):
        raise _refuse(
            path,
            "it does not hold a state dict of tensors (nor one under params_ema / params)",
            "use the official Real-ESRGAN .pth file, or save the model's state_dict() with safetensors",
        )
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weight file safely: ``.safetensors``, or ``.pth``/``.pt`` with ``weights_only=True``.

    Raises :class:`~brandstudio.errors.AssetError` for a missing file, another format, a
    pickle that holds more than tensors, or a file that does not hold a state dict.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise _refuse(
            path,
            f"{suffix or 'no suffix'} is not a weight format brandstudio reads",
            "use a .safetensors file (or an official Real-ESRGAN .pth, read with weights_only=True)",
        )
    if not path.is_file():
        raise _refuse(
            path, "the file does not exist", "check the path (upscale.weights or $BRANDSTUDIO_SR_WEIGHTS)"
        )
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return _unwrap(load_file(str(path)), path)
        except (SafetensorError, OSError, ValueError) as exc:
            raise _refuse(
                path, f"not a readable safetensors file ({exc})", "export the weights again"
            ) from None

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [
            ln.strip()
            for ln in str(exc).splitlines()
            if "unsupported global" in ln.lower() or "unsupported class" in ln.lower()
        ]  # torch 2.13: "Unsupported global: ..." or, for os/sys/..., "unsupported GLOBAL posix.system ... blocked"
        if not lines:  # weights_only's unpickler met bytes it cannot read: not a pickle at all
            raise _refuse(path, "not a readable torch file (bad pickle data)", "download it again") from None
        raise _refuse(
            path,
            "the pickle holds Python objects beyond tensors, which could run code on loading "
            f"(torch.load weights_only=True refused it: {lines[0][:160]})",
            "convert the weights you trust to .safetensors (safetensors.torch.save_file(model.state_dict(), ...))",
        ) from None
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: the unpickler fails with any error
        # (text named .pth: KeyError or IndexError; a cut pickle: struct.error), never a traceback
        raise _refuse(
            path, f"not a readable torch file ({type(exc).__name__}: {exc})", "download it again"
        ) from None
    return _unwrap(obj, path)


def inspect_weights(path: str | Path) -> SRSpec:
    """Check a weight file and say what it holds, reading only the header of a ``.safetensors``.

    Example:
        >>> import tempfile, os
        >>> from safetensors.torch import save_file
        >>> p = os.path.join(tempfile.mkdtemp(), "x.safetensors")
        >>> save_file(SRVGGNetCompact(num_feat=4, num_conv=1, upscale=4).state_dict(), p)
        >>> inspect_weights(p).scale
        4
    """
    path = Path(path)
    if path.suffix.lower() == ".safetensors" and path.is_file():
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                shapes = {k.removeprefix("module."): tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise _refuse(
                path, f"not a readable safetensors file ({exc})", "export the weights again"
            ) from None
    else:
        shapes = _shapes(load_state_dict(path))
    try:
        spec = detect(shapes)
        check_shapes(spec, shapes)
    except ValueError as exc:
        raise _refuse(
            path,
            f"the weights fit no known upscaler: {exc}",
            "use Real-ESRGAN weights (RRDBNet: RealESRGAN_x4plus/x2plus; SRVGGNetCompact: realesr-general-x4v3)",
        ) from None
    # every value finite (read once per file content; .pth through the weights_only reader above)
    read = None if path.suffix.lower() == ".safetensors" else (lambda p: load_state_dict(p).items())
    check_finite(path, what="upscaler weight file", fix=_NONFINITE_FIX, read=read)
    return spec


@functools.lru_cache(maxsize=4)
def _cached_model(path: str, size: int, mtime_ns: int, device: str, dtype: str) -> tuple[nn.Module, SRSpec]:
    state = load_state_dict(path)
    bad = nonfinite_tensors(path, read=lambda _: state.items())  # the state as loaded: no second read
    if bad:
        raise _refuse(
            Path(path), f"it holds non-finite values (NaN or ±inf): {bad[0].describe()}", _NONFINITE_FIX
        )
    try:
        spec = detect(state)
        check_shapes(spec, _shapes(state))
        model = build(spec)
        model.load_state_dict(state, strict=True)
    except (ValueError, RuntimeError) as exc:
        raise _refuse(
            Path(path),
            f"the weights do not fit the detected architecture: {' '.join(str(exc).split())[:400]}",
            "use unmodified Real-ESRGAN weights",
        ) from None
    model = model.eval().requires_grad_(False).to(device=device, dtype=getattr(torch, dtype))
    return model, spec


# -- tiled inference -----------------------------------------------------------------------


class RealESRGAN:
    """Upscale uint8 frames with a Real-ESRGAN-family model from a weight file.

    Args:
        weights: a ``.safetensors`` or ``.pth`` file (see :func:`load_state_dict`).
        tile: tile size in input px (``0``: whole frames at once).
        tile_pad: real-image context around each tile, input px; at least
            ``spec.receptive`` makes tiled == untiled.
        device: ``"auto"`` (CUDA when available), ``"cuda"`` or ``"cpu"``.
        dtype: ``"auto"`` (bf16 on CUDA, fp32 on CPU), ``"float32"``, ``"bfloat16"`` or ``"float16"``.

    Example:
        >>> import tempfile, os, numpy as np
        >>> from safetensors.torch import save_file
        >>> p = os.path.join(tempfile.mkdtemp(), "tiny.safetensors")
        >>> save_file(SRVGGNetCompact(num_feat=4, num_conv=1, upscale=2).state_dict(), p)
        >>> RealESRGAN(p, tile=8).upscale(np.zeros((2, 10, 12, 3), np.uint8)).shape
        (2, 20, 24, 3)
    """

    def __init__(
        self,
        weights: str | Path,
        *,
        tile: int = 256,
        tile_pad: int = 16,
        device: str = "auto",
        dtype: str = "auto",
    ) -> None:
        from brandstudio.post.grade_torch import resolve_device

        if tile < 0 or tile_pad < 0:
            raise ValueError(f"`tile` and `tile_pad` must be >= 0, got {tile}, {tile_pad}")
        self.path = Path(weights).resolve()
        self.device = resolve_device(device)
        if dtype == "auto":
            dtype = "bfloat16" if self.device.type == "cuda" else "float32"
        if dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")
        self.dtype = dtype
        if not self.path.is_file():
            raise _refuse(
                self.path, "the file does not exist", "check upscale.weights or $BRANDSTUDIO_SR_WEIGHTS"
            )
        st = self.path.stat()
        self.model, self.spec = _cached_model(
            str(self.path), st.st_size, st.st_mtime_ns, str(self.device), dtype
        )
        m = self.spec.multiple
        self.tile = -(-tile // m) * m if tile else 0
        self.tile_pad = -(-tile_pad // m) * m

    @property
    def scale(self) -> int:
        return self.spec.scale

    def __repr__(self) -> str:
        return f"RealESRGAN({self.path.name!r}, {self.spec.arch} x{self.scale}, {self.device}, {self.dtype})"

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """``(1, C, h, w)`` float in [0, 1] on the device -> ``(1, C, h*s, w*s)`` float32."""
        return self.model(x.to(getattr(torch, self.dtype))).float()

    def _tiled(self, x: torch.Tensor) -> torch.Tensor:
        _, c, h, w = x.shape
        s, t, pad = self.scale, self.tile, self.tile_pad
        if not t or (h <= t and w <= t):
            return self._run(x)
        out = torch.empty((1, self.spec.num_out_ch, h * s, w * s), dtype=torch.float32, device=x.device)
        for top in range(0, h, t):
            for left in range(0, w, t):
                bottom, right = min(top + t, h), min(left + t, w)
                t0, l0 = max(top - pad, 0), max(left - pad, 0)
                b0, r0 = min(bottom + pad, h), min(right + pad, w)
                y = self._run(x[:, :, t0:b0, l0:r0])
                out[:, :, top * s : bottom * s, left * s : right * s] = y[
                    :, :, (top - t0) * s : (bottom - t0) * s, (left - l0) * s : (right - l0) * s
                ]
        return out

    @torch.inference_mode()
    def upscale(self, frames: np.ndarray) -> np.ndarray:
        """``(T, H, W, 3)`` uint8 -> ``(T, H*scale, W*scale, 3)`` uint8."""

        frames = check_frames(frames)
        t, h, w, _ = frames.shape
        m, s = self.spec.multiple, self.scale
        ph, pw = (-h) % m, (-w) % m  # RRDBNet x2/x1 need sides divisible by 2/4: reflect-pad, crop after
        out = np.empty((t, h * s, w * s, 3), np.uint8)
        for i, frame in enumerate(frames):
            x = torch.from_numpy(frame).to(self.device).permute(2, 0, 1)[None].float().div_(255.0)
            if ph or pw:
                x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > m else "replicate")
            y = self._tiled(x)[:, :, : h * s, : w * s]
            out[i] = y[0].clamp_(0, 1).mul_(255.0).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        return out
