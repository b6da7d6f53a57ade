"""Templates: declared variables, defaults, types, sandbox, strict undefined, brand overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from brandstudio.errors import TemplateError
from brandstudio.prompts.compose import compose_negative, compose_prompt
from brandstudio.prompts.templates import PromptTemplate, TemplateLibrary, shared_templates_dir

REPO = Path(__file__).resolve().parents[2]


def test_shared_templates_are_complete():
    lib = TemplateLibrary([shared_templates_dir()])
    names = lib.names()
    assert {"product-hero", "lifestyle", "testimonial", "announcement"} <= set(names)
    for t in lib.all():
        assert t.spec.description and t.spec.captions, t.name
        for var in t.spec.variables.values():
            assert var.description, t.name


def test_render_fills_defaults_and_scales_cues():
    t = TemplateLibrary([shared_templates_dir()]).get("product-hero")
    r = t.render({"product": "Night Roast"})
    assert "Night Roast" in r.prompt and "wooden counter" in r.prompt
    assert r.cues[0][2] == "Night Roast"
    scaled = r.scaled_cues(2.5)
    assert scaled[0][0] == pytest.approx(0.15) and scaled[-1][1] == pytest.approx(2.5)


def test_types_are_coerced_and_checked():
    t = TemplateLibrary([shared_templates_dir()]).get("testimonial")
    r = t.render({"product": "X", "quote": "Lovely", "stars": "4"})
    assert r.variables["stars"] == 4 and "4/5" in r.cues[1][2]
    with pytest.raises(TemplateError, match="must be one of"):
        t.render({"product": "X", "quote": "Lovely", "stars": 2})
    with pytest.raises(TemplateError, match="must be a int"):
        t.render({"product": "X", "quote": "Lovely", "stars": "many"})


def test_brand_templates_override_shared_ones():
    lib = TemplateLibrary([REPO / "brand_profiles/qinglan-tea/templates", shared_templates_dir()])
    r = lib.get("product-hero").render({"product": "明前龙井"})
    assert "明前龙井" in r.prompt and "电影感" in r.prompt
    assert "announcement" in lib.names()  # shared ones stay available


@pytest.mark.parametrize(
    "source",
    [
        "{{ product.__class__.__mro__ }}",
        "{{ product.__class__.__base__.__subclasses__() }}",
        "{{ self.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{% set x = [] %}{{ x.append(1) }}",
    ],
)
def test_sandbox_blocks_python_internals(tmp_path, source):
    p = tmp_path / "evil.toml"
    p.write_text(f'prompt = """{source}"""\n[variables.product]\ntype = "str"\n', encoding="utf-8")
    with pytest.raises(TemplateError):
        PromptTemplate.load(p).render({"product": "x"})


def test_syntax_error_is_reported_at_load(tmp_path):
    p = tmp_path / "broken.toml"
    p.write_text('prompt = "{{ product "\n[variables.product]\ntype = "str"\n', encoding="utf-8")
    with pytest.raises(TemplateError, match="syntax error") as info:
        PromptTemplate.load(p)
    assert info.value.field == "prompt"


def test_values_are_data_not_code(tmp_path):
    t = TemplateLibrary([shared_templates_dir()]).get("product-hero")
    r = t.render({"product": "{{ 7 * 7 }}"})
    assert "{{ 7 * 7 }}" in r.prompt and "49" not in r.prompt


def test_compose_puts_scene_first_then_triggers_then_style():
    assert (
        compose_prompt("a cup", style="warm light", triggers=["aurora look"])
        == "a cup, aurora look, warm light"
    )
    assert compose_prompt("一杯茶", style="清新", triggers=[], language="zh") == "一杯茶，清新"
    assert compose_negative("blurry", "blurry, text") == "blurry, text"
