import numpy as np
import pytest

from brandstudio.post.reframe import Reframe, crop_box, delivery_size
from brandstudio.post.upscale import UPSCALERS, Upscale


@pytest.mark.parametrize(
    "aspect, short, size",
    [
        ("9:16", 720, (720, 1280)),
        ("4:5", 720, (720, 900)),
        ("16:9", 720, (1280, 720)),
        ("1:1", 720, (720, 720)),
        ("16:9", 480, (854, 480)),
    ],
)
def test_delivery_size(aspect, short, size):
    assert delivery_size(aspect, short) == size
    assert all(v % 2 == 0 for v in delivery_size(aspect, short))


def test_delivery_size_rejects_odd_and_unknown():
    with pytest.raises(ValueError, match="even"):
        delivery_size("9:16", 721)
    with pytest.raises(ValueError, match="aspect"):
        delivery_size("3:2", 720)


@pytest.mark.parametrize("aspect", ["9:16", "4:5", "1:1", "16:9"])
@pytest.mark.parametrize("src", [(144, 256), (256, 144), (100, 100)])
def test_reframe_is_largest_even_crop(aspect, src):
    h, w = src
    frames = np.zeros((2, h, w, 3), np.uint8)
    out = Reframe(aspect).apply(frames)
    _, ch, cw, _ = out.shape
    aw, ah = map(int, aspect.split(":"))
    assert ch % 2 == 0 and cw % 2 == 0
    assert ch <= h and cw <= w
    assert abs(cw / ch - aw / ah) < 0.05
    assert ch >= h - 2 or cw >= w - 2  # one side (nearly) untouched: the largest crop


def test_reframe_centre_keeps_the_centre_and_anchor_moves_it():
    frames = np.zeros((1, 144, 256, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(256, dtype=np.uint8)[None, None, :]  # column index in red
    centre = Reframe("9:16").apply(frames)
    assert abs(int(centre[0, 0, centre.shape[2] // 2, 0]) - 128) <= 1
    left = Reframe("9:16", anchor="left").apply(frames)
    assert left[0, 0, 0, 0] == 0
    assert crop_box(256, 144, "9:16", "right")[0] + crop_box(256, 144, "9:16", "right")[2] == 256


def test_upscale_to_delivery_size_and_colour_preserved():
    frames = np.zeros((3, 72, 128, 3), np.uint8)
    frames[..., :] = (200, 100, 50)
    for method in UPSCALERS:
        out = Upscale(256, 144, method=method).apply(frames)
        assert out.shape == (3, 144, 256, 3) and out.dtype == np.uint8
        assert np.abs(out.astype(int) - (200, 100, 50)).max() <= 1


def test_upscale_unknown_method_names_options():
    with pytest.raises(ValueError, match="lanczos"):
        Upscale(64, 64, method="nearest-ish")
