"""Profile loading: both demo profiles validate; the fingerprint tracks settings and asset bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brandstudio import load_profile
from brandstudio.profile.schema import profile_json_schema

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["aurora-coffee", "qinglan-tea"])
def test_demo_profiles_validate(name):
    prof = load_profile(REPO / "brand_profiles" / name)
    assert prof.id == name
    assert len(prof.fingerprint) == 64
    for key in ("colour.lut", "captions.font", "logo.file", "audio.tracks[0]", "style.loras[0].file"):
        asset = prof.assets[key]
        assert asset.path.is_file() and asset.path.is_relative_to(prof.root) and len(asset.sha256) == 64


def test_demo_profiles_differ():
    a = load_profile(REPO / "brand_profiles/aurora-coffee")
    b = load_profile(REPO / "brand_profiles/qinglan-tea")
    assert a.fingerprint != b.fingerprint
    assert a.spec.brand.language == "en" and b.spec.brand.language == "zh"
    assert set(a.spec.colour.palette).isdisjoint(b.spec.colour.palette)
    for key in ("colour.lut", "captions.font", "logo.file", "audio.tracks[0]", "style.loras[0].file"):
        assert a.assets[key].sha256 != b.assets[key].sha256, key


def test_fingerprint_changes_with_a_setting_and_with_asset_bytes(make_profile):
    base = load_profile(make_profile("aurora-coffee", name="p0")).fingerprint
    assert load_profile(make_profile("aurora-coffee", name="p1")).fingerprint == base  # location-independent
    edited = make_profile(
        "aurora-coffee", name="p2", edit=lambda t: t.replace("strength = 0.85", "strength = 0.8")
    )
    assert load_profile(edited).fingerprint != base
    touched = make_profile("aurora-coffee", name="p3")
    lut = touched / "luts/aurora-warm.cube"
    lut.write_text(lut.read_text() + "\n# comment\n")
    assert load_profile(touched).fingerprint != base


def test_profile_is_frozen():
    prof = load_profile(REPO / "brand_profiles/aurora-coffee")
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        prof.spec.colour.strength = 0.1  # type: ignore[misc]


def test_schema_is_json_schema():
    schema = profile_json_schema()
    json.dumps(schema)
    assert {"brand", "captions"} <= set(schema["required"])
    assert "colour" in schema["properties"]
