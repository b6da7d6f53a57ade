import numpy as np
import pytest
from PIL import Image

from brandstudio.errors import AssetError, PostError
from brandstudio.post.label import Label, label_text
from brandstudio.post.logo import Logo, load_logo

PROFILES = __import__("pathlib").Path(__file__).resolve().parents[2] / "brand_profiles"
SAFE = (0.12, 0.22, 0.06, 0.12)  # top, bottom, left, right (the 9:16 default)


def _logo(tmp_path):
    rgba = np.zeros((40, 80, 4), np.uint8)
    rgba[..., :3] = (255, 255, 255)  # colour under transparent pixels must not bleed
    rgba[8:32, 8:72] = (220, 30, 30, 255)
    path = tmp_path / "logo.png"
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def test_load_logo_roundtrip(tmp_path):
    rgba = load_logo(_logo(tmp_path))
    assert rgba.shape == (40, 80, 4) and rgba.dtype == np.uint8


def test_load_logo_errors(tmp_path):
    with pytest.raises(AssetError, match="not found"):
        load_logo(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(AssetError) as err:
        load_logo(tmp_path / "bad.png")
    assert err.value.file.endswith("bad.png")


@pytest.mark.parametrize("position", ["top-left", "top-right", "bottom-left", "bottom-right"])
def test_logo_sits_in_the_safe_area_corner(tmp_path, position):
    W, H = 180, 320
    frames = np.full((2, H, W, 3), 40, np.uint8)
    logo = Logo(load_logo(_logo(tmp_path)), position=position, scale=0.3, opacity=1.0, margins=SAFE)
    out = logo.apply(frames)
    ys, xs = np.nonzero((out[0] != frames[0]).any(axis=-1))
    left, top, right, bottom = round(0.06 * W), round(0.12 * H), W - round(0.12 * W), H - round(0.22 * H)
    assert xs.min() >= left and xs.max() < right and ys.min() >= top and ys.max() < bottom
    width = round(0.3 * W)
    if position.endswith("left"):
        assert xs.min() < left + width // 2
    else:
        assert xs.max() > right - width // 2
    if position.startswith("top"):
        assert ys.min() < top + width // 2
    else:
        assert ys.max() > bottom - width // 2
    # inside: the logo's red; around it: no white fringe from the transparent pixels
    assert (out[0][ys, xs][:, 0] > out[0][ys, xs][:, 1]).all()
    assert np.array_equal(out[1], out[0])


def test_logo_opacity_blends(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[...] = (200, 200, 200, 255)
    out = Logo(rgba, "top-left", scale=0.5, opacity=0.5, margins=(0, 0, 0, 0)).apply(
        np.zeros((1, 40, 40, 3), np.uint8)
    )
    assert abs(int(out[0, 5, 5, 0]) - 100) <= 1


def test_profile_logos_load():
    for path in sorted(PROFILES.glob("*/logo.png")):
        rgba = load_logo(path)
        assert rgba.shape[2] == 4 and rgba[..., 3].min() < 255  # it has transparency


def test_label_texts():
    assert label_text("none", "en") is None
    assert label_text("eu", "en") == "AI-generated content"
    assert label_text("eu", "de") == "KI-generierter Inhalt"
    assert label_text("cn", "zh") == "人工智能生成"
    assert label_text("cn", "zh-CN") == "人工智能生成"
    assert label_text("cn", "en") == "AI-generated"
    assert label_text("us", "en") == "AI-generated"
    with pytest.raises(ValueError, match="region"):
        label_text("mars", "en")


def test_label_draws_a_readable_box(latin_font):
    W, H = 360, 640
    frames = np.full((1, H, W, 3), 230, np.uint8)  # a bright frame: the dark box makes it readable
    out = Label("AI-generated content", latin_font, "top-left", size=0.04, margins=SAFE).apply(frames)
    ys, xs = np.nonzero((out[0] != frames[0]).any(axis=-1))
    assert ys.min() >= round(0.12 * H) and xs.min() >= round(0.06 * W)
    assert ys.max() < H / 2 and xs.max() < W * 0.9
    box = out[0, ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    assert (box.mean(axis=-1) < 120).mean() > 0.5  # mostly the dark box
    assert (box.min(axis=-1) > 200).sum() > 20  # white text on it


def test_label_chinese(cjk_font):
    out = Label(label_text("cn", "zh"), cjk_font, "bottom-right", margins=SAFE).apply(
        np.zeros((1, 640, 360, 3), np.uint8)
    )
    assert out.any()


def test_label_missing_glyph(latin_font):
    with pytest.raises(PostError, match="人"):
        Label("人工智能生成", latin_font)
