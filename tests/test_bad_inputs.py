"""Bad input: every case gives one clear error (what, profile, file, field, fix) and writes nothing.

Each row builds a broken copy of a demo profile (or a bad render call), runs it through
the public API with an empty output directory, and checks the error's type and context,
and that the output directory is still empty afterwards.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from brandstudio import (
    AssetError,
    BrandStudio,
    LoRAError,
    PostError,
    ProfileError,
    ProfileNotFound,
    RequestError,
    SafetyViolation,
    TemplateError,
)


def sub(old: str, new: str):
    def edit(text: str) -> str:
        assert old in text, f"fixture drift: {old!r} not in brand.toml"
        return text.replace(old, new, 1)

    return edit


VALID = dict(template="product-hero", product="Night Roast", aspect="9:16", duration=1.0, resolution=128)

# id, profile edits, extra files, render kwargs, expected error, expected field (or None), expected file (or None)
CASES = [
    ("broken-toml", dict(edit=sub("[colour]", "[colour")), {}, ProfileError, None, "brand.toml"),
    (
        "unknown-key",
        dict(edit=sub("strength = 0.85", "strenght = 0.85")),
        {},
        ProfileError,
        "colour.strenght",
        "brand.toml",
    ),
    (
        "wrong-type",
        dict(edit=sub("fps = 16\nduration", 'fps = "fast"\nduration')),
        {},
        ProfileError,
        "output.fps",
        "brand.toml",
    ),
    (
        "out-of-range",
        dict(edit=sub("strength = 0.85", "strength = 1.5")),
        {},
        ProfileError,
        "colour.strength",
        "brand.toml",
    ),
    ("bad-hex", dict(edit=sub('"#3B2A20"', '"brown"')), {}, ProfileError, "colour.palette", "brand.toml"),
    (
        "missing-section",
        dict(edit=lambda t: t.split("[captions]")[0] + "[logo]" + t.split("[logo]")[1]),
        {},
        ProfileError,
        "captions",
        "brand.toml",
    ),
    (
        "bad-regex",
        dict(edit=sub('pattern = "\\\\b(best', 'pattern = "\\\\b((best')),
        {},
        ProfileError,
        "safety.rules[1].pattern",
        "brand.toml",
    ),
    ("width-not-16", dict(edit=sub("width = 256", "width = 250")), {}, ProfileError, "model", "brand.toml"),
    (
        "missing-lut",
        dict(edit=sub("luts/aurora-warm.cube", "luts/nope.cube")),
        {},
        AssetError,
        "colour.lut",
        "luts/nope.cube",
    ),
    (
        "corrupt-lut",
        dict(files={"luts/aurora-warm.cube": "LUT_3D_SIZE 33\n0.1 0.2\nnot numbers\n"}),
        {},
        AssetError,
        "colour.lut",
        "luts/aurora-warm.cube",
    ),
    (
        "missing-font",
        dict(edit=sub("fonts/NotoSerif-Bold.ttf", "fonts/Nope.ttf")),
        {},
        AssetError,
        "captions.font",
        "fonts/Nope.ttf",
    ),
    (
        "corrupt-font",
        dict(files={"fonts/NotoSerif-Bold.ttf": os.urandom(2048)}),
        {},
        AssetError,
        "captions.font",
        "fonts/NotoSerif-Bold.ttf",
    ),
    (
        "missing-logo",
        dict(edit=sub('file = "logo.png"', 'file = "brand/logo.png"')),
        {},
        AssetError,
        "logo.file",
        "brand/logo.png",
    ),
    (
        "corrupt-logo",
        dict(files={"logo.png": b"\x89PNG\r\n\x1a\n" + os.urandom(300)}),
        {},
        AssetError,
        "logo.file",
        "logo.png",
    ),
    (
        "missing-music",
        dict(edit=sub("music/morning-roast.m4a", "music/gone.m4a")),
        {},
        AssetError,
        "audio.tracks[0]",
        "music/gone.m4a",
    ),
    (
        "corrupt-music",
        dict(files={"music/morning-roast.m4a": os.urandom(4096)}),
        {},
        AssetError,
        "audio.tracks[0]",
        "music/morning-roast.m4a",
    ),
    (
        "missing-lora",
        dict(edit=sub("loras/aurora-film.safetensors", "loras/other.safetensors")),
        {},
        AssetError,
        "style.loras[0].file",
        "loras/other.safetensors",
    ),
    (
        "corrupt-lora",
        dict(files={"loras/aurora-film.safetensors": os.urandom(512)}),
        {},
        AssetError,
        "style.loras[0].file",
        "loras/aurora-film.safetensors",
    ),
    (
        "pickle-weights",
        dict(
            edit=sub("loras/aurora-film.safetensors", "loras/aurora-film.pt"),
            files={"loras/aurora-film.pt": pickle.dumps({"w": [1, 2, 3]})},
        ),
        {},
        AssetError,
        "style.loras[0].file",
        "loras/aurora-film.pt",
    ),
    (
        "pickle-renamed",
        dict(files={"loras/aurora-film.safetensors": pickle.dumps({"w": [1, 2, 3]})}),
        {},
        AssetError,
        "style.loras[0].file",
        "loras/aurora-film.safetensors",
    ),
    (
        "path-escape",
        dict(edit=sub("luts/aurora-warm.cube", "../../../etc/passwd.cube")),
        {},
        AssetError,
        "colour.lut",
        "../../../etc/passwd.cube",
    ),
    (
        "absolute-path",
        dict(edit=sub("luts/aurora-warm.cube", "/etc/ssl/x.cube")),
        {},
        AssetError,
        "colour.lut",
        "brand.toml",
    ),
    (
        "undefined-template-var",
        dict(
            files={
                "templates/product-hero.toml": 'prompt = "{{ product }} with {{ secret_sauce }}"\n'
                '[variables.product]\ntype = "str"\n'
            }
        ),
        {},
        TemplateError,
        "prompt",
        None,
    ),
    (
        "sandbox-escape",
        dict(
            files={
                "templates/product-hero.toml": 'prompt = "{{ product.__class__.__mro__[1].__subclasses__() }}"\n'
                '[variables.product]\ntype = "str"\n'
            }
        ),
        {},
        TemplateError,
        "prompt",
        None,
    ),
    (
        "sandbox-escape-format",
        dict(
            files={
                "templates/product-hero.toml": "prompt = \"{{ '{0.__globals__}'.format(cycler.__init__) }}\"\n"
                '[variables.product]\ntype = "str"\n'
            }
        ),
        {},
        TemplateError,
        "prompt",
        None,
    ),
    ("unknown-template", {}, dict(template="no-such-template"), TemplateError, None, None),
    ("missing-variable", {}, dict(product=None), TemplateError, "variables.product", None),
    ("unknown-variable", {}, dict(flavour="mocha"), TemplateError, "variables.flavour", None),
    ("variable-too-long", {}, dict(tagline="t" * 61), TemplateError, "variables.tagline", None),  # max_length
    ("over-max", {}, dict(template="promo", discount=150), TemplateError, "variables.discount", None),  # max
    ("unsupported-aspect", {}, dict(aspect="21:9"), RequestError, "aspect", None),
    (
        "aspect-not-enabled",
        dict(edit=sub('aspects = ["9:16", "16:9", "1:1", "4:5"]', 'aspects = ["16:9"]')),
        {},
        RequestError,
        "output.aspects",
        "brand.toml",
    ),
    ("too-long", {}, dict(duration=30.0), RequestError, "output.duration", "brand.toml"),
    ("odd-resolution", {}, dict(resolution=129), RequestError, "resolution", None),
    ("output-not-mp4", {}, dict(output="clip.webm"), RequestError, "output", None),
    ("output-is-a-folder", {}, dict(output="."), RequestError, "output", None),
    (
        "capitalised-mood",  # one problem, at the table's field (not "tracks[0].str: not a string")
        dict(edit=lambda t: t.replace('mood = "calm"', 'mood = "Calm"', 1)),
        {},
        ProfileError,
        "audio.tracks[0].mood",
        "brand.toml",
    ),
    (
        "cross-field-threshold",  # a check across fields names the field, not the whole section
        dict(edit=lambda t: t + "\n[qc]\ndelta_e_fail = 10\n"),
        {},
        ProfileError,
        "qc.delta_e_fail",
        "brand.toml",
    ),
    ("blocked-competitor", {}, dict(product="S t a r b u c k s blend"), SafetyViolation, "prompt", None),
    ("blocked-caption", {}, dict(tagline="Cures diabetes!"), SafetyViolation, "caption[1]", None),
    (
        "missing-glyph",
        {},
        dict(tagline="Rated ★★★★★"),
        PostError,
        "captions.font",
        "fonts/NotoSerif-Bold.ttf",
    ),
    (
        "lora-other-base",
        dict(edit=sub('base_model = "tiny-wan2.2"', 'base_model = "wan2.2-t2v-a14b"')),
        {},
        LoRAError,
        None,
        None,
    ),
]


@pytest.mark.parametrize("case_id,profile_kw,render_kw,error,field,file", CASES, ids=[c[0] for c in CASES])
def test_bad_input(make_profile, tmp_path, case_id, profile_kw, render_kw, error, field, file):
    out = tmp_path / "renders"
    out.mkdir()
    profile_dir = make_profile("aurora-coffee", **profile_kw)
    kwargs = {**VALID, **render_kw}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    template = kwargs.pop("template")
    with pytest.raises(error) as info:
        BrandStudio(profile_dir, output_dir=out).render(template, **kwargs)
    exc = info.value
    text = str(exc)
    assert exc.fix, f"{case_id}: no fix given:\n{text}"
    assert "fix:" in text
    assert exc.profile == "aurora-coffee", text
    if field is not None:
        assert exc.field is not None and exc.field.startswith(field), (
            f"{case_id}: field {exc.field!r}\n{text}"
        )
    if file is not None:
        assert exc.file == file, f"{case_id}: file {exc.file!r}\n{text}"
    assert "Traceback" not in text and "{'" not in text  # no dump of a parsed section
    assert list(out.rglob("*")) == [], f"{case_id}: output written: {list(out.rglob('*'))}"


def test_profile_not_found(tmp_path):
    with pytest.raises(ProfileNotFound) as info:
        BrandStudio(tmp_path / "nowhere")
    assert "brand.toml" in info.value.fix
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProfileNotFound) as info:
        BrandStudio(tmp_path / "empty")
    assert info.value.file == "brand.toml"


def test_symlink_out_of_profile_is_refused(make_profile, tmp_path):
    outside = tmp_path / "outside.cube"
    outside.write_text(
        (Path(__file__).parent.parent / "brand_profiles/aurora-coffee/luts/aurora-warm.cube").read_text()
    )
    prof = make_profile("aurora-coffee")
    lut = prof / "luts" / "aurora-warm.cube"
    lut.unlink()
    lut.symlink_to(outside)
    with pytest.raises(AssetError) as info:
        BrandStudio(prof)
    assert "outside the profile" in info.value.message
    assert info.value.field == "colour.lut"


def test_there_are_at_least_twenty_cases():
    assert len(CASES) >= 20
