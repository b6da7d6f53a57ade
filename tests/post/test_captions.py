import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from brandstudio.errors import AssetError, PostError
from brandstudio.post.captions import Captions, CaptionStyle, render_cue, wrap_text
from brandstudio.post.fonts import missing_glyphs
from brandstudio.post.subtitles import Cue, srt_text, vtt_text, write_srt, write_vtt


def _style(font, **kw):
    base = {
        "size": 0.08,
        "margin_top": 0.12,
        "margin_bottom": 0.22,
        "margin_left": 0.06,
        "margin_right": 0.12,
    }
    base.update(kw)
    return CaptionStyle(font, **base)


def test_captions_change_only_the_safe_area_and_only_while_active(latin_font):
    W, H, fps = 180, 320, 4
    frames = np.full((8, H, W, 3), 60, np.uint8)
    style = _style(latin_font)
    out = Captions([Cue(0.5, 1.25, "Morning ritual")], style, fps).apply(frames)
    changed = [bool((out[i] != frames[i]).any()) for i in range(8)]
    # t = i / 4: 0.5 <= t < 1.25 -> frames 2, 3, 4
    assert changed == [False, False, True, True, True, False, False, False]
    left, top, right, bottom = style.safe_box(W, H)
    diff = (out[3] != frames[3]).any(axis=-1)
    ys, xs = np.nonzero(diff)
    assert ys.min() >= top and ys.max() < bottom and xs.min() >= left and xs.max() < right
    assert ys.max() > (top + bottom) / 2  # bottom position: in the lower half of the safe area
    # the text is drawn in the fill colour with a dark stroke
    assert (out[3][diff] > 200).all(axis=-1).any() and (out[3][diff] < 40).all(axis=-1).any()


@pytest.mark.parametrize("position", ["top", "center"])
def test_positions(latin_font, position):
    W, H = 180, 320
    style = _style(latin_font, position=position)
    rgba, x, y = render_cue("Hello", style, W, H)
    left, top, right, bottom = style.safe_box(W, H)
    if position == "top":
        assert y == top
    else:
        assert abs((y + rgba.shape[0] / 2) - (top + bottom) / 2) <= 1
    assert abs((x + rgba.shape[1] / 2) - (left + right) / 2) <= 1  # centred in the safe area


def test_long_latin_text_wraps_inside_the_safe_area(latin_font):
    W, H = 360, 640
    style = _style(latin_font, max_lines=3)
    text = "Slow-roasted at dawn for the people who love their first cup"
    rgba, x, _y = render_cue(text, style, W, H)
    left, _, right, _ = style.safe_box(W, H)
    assert x >= left and x + rgba.shape[1] <= right
    assert rgba.shape[0] > 2 * style.size * W  # more than one line


def test_text_that_cannot_fit_is_an_error(latin_font):
    with pytest.raises(PostError, match="does not fit"):
        render_cue("word " * 80, _style(latin_font, max_lines=1), 180, 320)


def test_shrinks_font_to_respect_max_lines(latin_font):
    style = _style(latin_font, max_lines=1, size=0.12)
    rgba, _, _ = render_cue("Night Roast tonight", style, 360, 640)
    assert rgba.shape[0] < 2 * 0.12 * 360  # one line


def test_wrap_rules_latin_and_cjk():
    assert wrap_text("the quick brown fox", 9, len) == ["the quick", "brown fox"]
    lines = wrap_text("清晨的第一杯茶，带来山间的清新。每一片茶叶都经过精心挑选！", 5, len)
    closing = set("，。！？、）」")
    assert all(line[0] not in closing for line in lines)
    assert "".join(lines) == "清晨的第一杯茶，带来山间的清新。每一片茶叶都经过精心挑选！"
    assert all(len(line) <= 5 for line in lines)
    assert all(not line.endswith("（") for line in wrap_text("我说（你好）呀", 3, len))
    assert wrap_text("a\nb", 10, len) == ["a", "b"]
    assert wrap_text("Supercalifragilistic", 5, len)[0] == "Super"


def test_chinese_captions_with_cjk_font(cjk_font):
    text = "清晨的第一杯青岚茶，带来山间的清新与宁静。每一片茶叶都经过精心挑选！"
    style = _style(cjk_font, size=0.06, max_lines=3)
    assert missing_glyphs(cjk_font, text) == []
    W, H = 360, 640
    font_px = round(0.06 * W)
    stroke = round(style.stroke_width * font_px)
    font = ImageFont.truetype(str(cjk_font), font_px)
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, _, right, _ = style.safe_box(W, H)
    lines = wrap_text(text, right - left, lambda s: draw.textlength(s, font=font) + 2 * stroke)
    assert len(lines) >= 2 and all(line[0] not in "，。！？、" for line in lines)
    out = Captions([Cue(0, 1, text)], style, 2).apply(np.zeros((2, H, W, 3), np.uint8))
    assert (out[0] > 200).all(axis=-1).sum() > 200  # white glyph pixels drawn


def test_missing_glyph_raises_post_error_naming_chars_and_font(latin_font):
    assert missing_glyphs(latin_font, "Café 咖啡 \n") == ["咖", "啡"]
    with pytest.raises(PostError) as err:
        Captions([Cue(0, 1, "Good 咖啡")], _style(latin_font), 16)
    assert "咖" in str(err.value) and "啡" in str(err.value)
    assert err.value.file == str(latin_font)


def test_font_errors(tmp_path):
    with pytest.raises(AssetError, match="not found"):
        missing_glyphs(tmp_path / "nope.ttf", "a")
    bad = tmp_path / "bad.ttf"
    bad.write_bytes(b"not a font" * 10)
    with pytest.raises(AssetError):
        missing_glyphs(bad, "a")


def test_srt_and_vtt_sidecars(tmp_path):
    cues = [Cue(0.0, 1.5, "Good morning"), Cue(61.25, 3725.5, "早上好")]
    srt = write_srt(cues, tmp_path / "c.srt").read_text(encoding="utf-8")
    assert "1\n00:00:00,000 --> 00:00:01,500\nGood morning\n" in srt
    assert "2\n00:01:01,250 --> 01:02:05,500\n早上好\n" in srt
    vtt = write_vtt(cues, tmp_path / "c.vtt").read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.srt", "c.vtt"]  # no temp files left
    assert srt_text([]) == ""


def test_sidecars_keep_caption_text_literal():
    """Markup-like text stays text: WebVTT gets character references, and neither format sees an
    arrow or a blank line in a caption (one reads as a timing line, the other ends the cue)."""
    import html
    import re

    cues = [Cue(0.0, 1.0, "We <3 R&D --> <b>now</b>"), Cue(1.0, 2.0, "line one\n\nline two")]
    vtt = vtt_text(cues)
    payloads = re.findall(r"--> \S+\n(.*?)\n(?:\n|$)", vtt, flags=re.S)
    assert payloads == ["We &lt;3 R&amp;D --&gt; &lt;b&gt;now&lt;/b&gt;", "line one\nline two"]
    assert html.unescape(payloads[0]) == cues[0].text  # what a player shows
    assert vtt.count("-->") == 2 and "<" not in vtt
    srt = srt_text(cues)
    assert "We <3 R&D → <b>now</b>\n" in srt and srt.count("-->") == 2
    assert srt.split("\n\n")[1].startswith("2\n")  # the blank line inside cue 2 is gone


def test_cue_validation():
    with pytest.raises(ValueError):
        Cue(2.0, 1.0, "x")
    with pytest.raises(ValueError):
        Cue(0.0, 1.0, "  ")
