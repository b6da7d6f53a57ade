"""The check step: what can be refused is refused before any work, naming the field and the fix,
and nothing is written."""

from __future__ import annotations

import pytest
from fixed_generators import FlatGenerator
from helpers import PROFILES

from brandstudio import BrandStudio, ProfileError, RequestError, load_profile


def test_an_output_path_under_a_file_is_refused_before_generation(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    gen = FlatGenerator()
    studio = BrandStudio(PROFILES / "aurora-coffee", output_dir=tmp_path, generator=gen, cache=False)
    with pytest.raises(RequestError) as err:
        studio.render("product-hero", product="Night Roast", duration=1.0, resolution=128,
                      output=blocker / "clip.mp4")  # fmt: skip
    assert err.value.field == "output" and "is a file, not a folder" in err.value.message
    assert err.value.profile == "aurora-coffee"
    assert gen.calls == 0  # nothing generated
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]  # nothing written


@pytest.mark.parametrize(
    ("section", "key", "value", "field", "listed"),
    [
        ("brand", "region", "mars", "brand.region", "eu, cn, us, none"),
        ("upscale", "method", "nearest", "upscale.method", "lanczos"),
        ("colour", "interpolation", "cubic", "colour.interpolation", "tetrahedral, trilinear"),
        ("model", "attention", "xformers", "model.attention", "auto, native"),
        ("provenance", "alg", "md5", "provenance.alg", "es256"),
    ],
)
def test_registry_names_in_brand_toml_are_checked_with_the_valid_ones_listed(
    make_profile, section, key, value, field, listed
):
    def edit(text: str) -> str:
        header = f"[{section}]\n"
        if header in text:
            return text.replace(header, f'{header}{key} = "{value}"\n', 1)
        return text + f'\n{header}{key} = "{value}"\n'

    root = make_profile(edit=lambda t: edit(_drop_key(t, section, key)))
    with pytest.raises(ProfileError) as err:
        load_profile(root)
    text = str(err.value)
    assert field in text and repr(value) in text and listed in text


def _drop_key(text: str, section: str, key: str) -> str:
    """brand.toml without ``key`` in ``[section]`` (so the test sets it once)."""
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            inside = line.strip() == f"[{section}]"
        if inside and line.split("=")[0].strip() == key:
            continue
        out.append(line)
    return "".join(out)


@pytest.mark.parametrize(("section", "key", "value"), [("colour", "match", "off"), ("model", "attention", "auto")])
def test_registry_names_that_select_nothing_are_valid(make_profile, section, key, value):
    root = make_profile(edit=lambda t: _drop_key(t, section, key).replace(
        f"[{section}]\n", f'[{section}]\n{key} = "{value}"\n', 1))  # fmt: skip
    assert getattr(getattr(load_profile(root).spec, section), key) == value
