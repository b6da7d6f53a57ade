"""Deliveries: the presets match the published specs they name, entries resolve against them, and
bad entries in brand.toml are refused with the delivery and the field named."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest

from brandstudio.deliveries import DELIVERY_CODECS, DELIVERY_PRESETS, resolve_delivery
from brandstudio.errors import ProfileError
from brandstudio.rates import frame_rate


def test_every_preset_resolves_to_a_complete_delivery():
    for name in DELIVERY_PRESETS:
        d = resolve_delivery({"name": name, "preset": name})
        assert d.codec in DELIVERY_CODECS and d.resolution % 2 == 0


def test_broadcast_is_ebu_r128_and_social_is_vertical():
    tv = resolve_delivery({"name": "tv", "preset": "broadcast-1080p25"})
    assert (tv.aspect, tv.resolution, frame_rate(tv.fps), tv.loudness, tv.true_peak) == (
        "16:9", 1080, Fraction(25), -23.0, -1.0
    )
    assert tv.captions == "sidecar"  # a clean picture, subtitles as files
    reels = resolve_delivery({"name": "reels", "preset": "social-vertical"})
    assert (reels.aspect, reels.loudness, reels.captions) == ("9:16", -14.0, "burn")
    master = resolve_delivery({"name": "master", "preset": "mezzanine"})
    codec = DELIVERY_CODECS[master.codec]
    assert (codec.encoder, codec.container, codec.pixel_format) == ("prores_ks", "mov", "yuv422p10le")
    assert master.fps is None  # the render's own rate


def test_an_entry_overrides_its_preset_and_ntsc_rates_stay_exact():
    d = resolve_delivery({"name": "us-tv", "preset": "broadcast-1080p25", "fps": 29.97, "loudness": -24})
    assert frame_rate(d.fps) == Fraction(30000, 1001) and d.loudness == -24.0 and d.resolution == 1080


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "aspect": "9:16"}, "resolution"),
        ({"name": "x", "preset": "tiktok-pro"}, "unknown delivery preset 'tiktok-pro'; use one of: social-vertical"),
        ({"name": "x", "preset": "youtube", "codec": "hevc"}, "unknown delivery codec 'hevc'"),
        ({"name": "x", "preset": "youtube", "resolution": 1081}, "must be even"),
        ({"name": "x", "preset": "youtube", "loudness": 3}, "loudness"),
        ({"name": "Bad Name", "preset": "youtube"}, "lower-case slug"),
        ({"name": "x", "preset": "youtube", "fps": "abc"}, "not a frame rate"),
        ({"name": "x", "preset": "youtube", "bitrate": 5}, "bitrate"),
    ],
)
def test_bad_entries_name_the_field(entry, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        resolve_delivery(entry)


def test_brand_toml_deliveries_are_checked_when_the_profile_loads(make_profile):
    good = make_profile("aurora-coffee", edit=lambda t: t + '\n[[deliveries]]\nname = "tv"\npreset = "broadcast-1080p25"\n'
                        '\n[[deliveries]]\nname = "reels"\npreset = "social-vertical"\nloudness = -16\n')  # fmt: skip
    from brandstudio.profile import load_profile

    spec = load_profile(good).spec
    assert [resolve_delivery(d).loudness for d in spec.deliveries] == [-23.0, -16.0]
    twice = make_profile(edit=lambda t: t + '\n[[deliveries]]\nname = "tv"\npreset = "youtube"\n' * 2, name="twice")
    with pytest.raises(ProfileError, match="a second delivery named 'tv'"):
        load_profile(twice)
    incomplete = make_profile(edit=lambda t: t + '\n[[deliveries]]\nname = "tv"\naspect = "16:9"\n', name="incomplete")
    with pytest.raises(ProfileError, match=r"delivery 'tv' \(deliveries\[0\]\): `resolution`: Field required"):
        load_profile(incomplete)
