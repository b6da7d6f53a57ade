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


# -- limits: min/max on numbers, min_length/max_length on text ---------------------------------

LIMITED = """prompt = "{{ discount }} {{ ratio }} {{ tagline }} {{ code }}"
[variables.discount]
type = "int"
min = 5
max = 70
default = 20
description = "percent"
[variables.ratio]
type = "float"
min = 0.5
max = 2
default = 1.0
[variables.tagline]
type = "str"
max_length = 12
default = "Fresh."
[variables.code]
type = "str"
min_length = 3
default = "abc"
"""


def limited(tmp_path, text: str = LIMITED, name: str = "promo") -> PromptTemplate:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return PromptTemplate.load(path)


@pytest.mark.parametrize(
    ("var", "field", "says", "fix"),
    [
        ('type = "str"\nmin = 3', "min", "`min` limits the value of an int or float variable, not a str",
         "`min_length`"),
        ('type = "str"\nmax = 3', "max", "not a str", "`max_length`"),
        ('type = "int"\nmax_length = 5', "max_length", "limits the characters of a str variable, not an int",
         "`max`"),
        ('type = "float"\nmin_length = 1', "min_length", "not a float", "`min`"),
        ('type = "bool"\nmin = 0', "min", "a bool variable takes no limits", "remove `min`"),
        ('type = "bool"\nmax_length = 4', "max_length", "a bool variable takes no limits",
         "remove `max_length`"),
        ('type = "int"\nmin = 10\nmax = 5', "min", "`min` (10) is larger than `max` (5)", "at most `max`"),
        ('type = "float"\nmin = 1.5\nmax = 0.5', "min", "`min` (1.5) is larger than `max` (0.5)", "at most"),
        ('type = "int"\nmin = 2.5', "min", "must be a whole number, got 2.5", "decimal point"),
        ('type = "str"\nmax_length = 301', "max_length", "must be from 1 to 300, got 301", "from 1 to 300"),
        ('type = "str"\nmax_length = 0', "max_length", "must be from 1 to 300, got 0", "from 1 to 300"),
        ('type = "str"\nmin_length = -1', "min_length", "must be 0 or more", "0 or more"),
        ('type = "str"\nmin_length = 10\nmax_length = 5', "min_length",
         "`min_length` (10) is larger than `max_length` (5)", "at most `max_length`"),
        ('type = "str"\nmin_length = 400', "min_length", "larger than the limit on every value (300",
         "at most `max_length`"),
        ('type = "int"\nmin = 5\nmax = 70\ndefault = 80', "default", "`default` must be at most 70, got 80",
         "choose a default from 5 to 70"),
        ('type = "float"\nmin = 0.5\ndefault = 0.25', "default", "`default` must be at least 0.5, got 0.25",
         "of at least 0.5"),
        ('type = "str"\nmax_length = 5\ndefault = "too long"', "default",
         "`default` is 8 characters long; the limit is 5", "of at most 5 characters"),
        ('type = "str"\nmin_length = 2\ndefault = ""', "default",
         "`default` is 0 characters long; it needs at least 2", "of at least 2 characters"),
        ('type = "int"\nmin = 3\nmax = 5\nchoices = [3, 4, 6]', "choices[2]",
         "the choice 6 must be at most 5", "keep every choice from 3 to 5"),
        ('type = "str"\ndefault = "%s"' % ("d" * 301), "default",  # no max_length: every str's limit
         "`default` is 301 characters long; the limit is 300", "of at most 300 characters"),
        ('type = "str"\nmax_length = 4\nchoices = ["calm", "festive"]', "choices[1]",
         "the choice 'festive' is 7 characters long; the limit is 4", "keep every choice"),
    ],
)  # fmt: skip
def test_bad_limits_are_refused_at_load_naming_the_file_field_and_fix(tmp_path, var, field, says, fix):
    path = tmp_path / "promo.toml"
    path.write_text(f'prompt = "{{{{ x }}}}"\n[variables.x]\n{var}\n', encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        PromptTemplate.load(path)
    err = info.value
    assert err.file == str(path) and err.field == f"variables.x.{field}", (err.field, str(err))
    assert says in err.message and f"`variables.x.{field}`" in err.message, err.message
    assert fix in err.fix, err.fix


@pytest.mark.parametrize(
    ("var", "field", "says"),
    [
        ('type = "int"\nmin = "5"', "min", "`min` must be a number, got '5'"),
        ('type = "int"\nmax = true', "max", "`max` must be a number, got True"),
        ('type = "float"\nmax = nan', "max", "`max` must be a finite number"),
        ('type = "float"\nmin = -inf', "min", "`min` must be a finite number"),
        ('type = "str"\nmax_length = 5.5', "max_length", "must be a whole number of characters, got 5.5"),
        ('type = "str"\nmin_length = false', "min_length", "must be a whole number of characters"),
    ],
)
def test_limits_of_the_wrong_kind_are_refused_at_load(tmp_path, var, field, says):
    path = tmp_path / "promo.toml"
    path.write_text(f'prompt = "{{{{ x }}}}"\n[variables.x]\n{var}\n', encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        PromptTemplate.load(path)
    assert info.value.field == f"variables.x.{field}" and says in info.value.message, str(info.value)


@pytest.mark.parametrize(
    ("values", "expect"),
    [
        ({"discount": 5}, {"discount": 5}),  # the limits are inclusive
        ({"discount": "70"}, {"discount": 70}),
        ({"ratio": "0.5"}, {"ratio": 0.5}),
        ({"ratio": 2}, {"ratio": 2.0}),  # an int where a float is declared
        ({"tagline": "x" * 12}, {"tagline": "x" * 12}),
        ({"code": "abc"}, {"code": "abc"}),
        ({"tagline": ""}, {"tagline": ""}),  # no min_length: empty is fine
    ],
)
def test_values_on_the_limits_are_accepted(tmp_path, values, expect):
    full = limited(tmp_path).coerce(values)
    assert {k: full[k] for k in expect} == expect
    assert all(type(full[k]) is type(v) for k, v in expect.items())


@pytest.mark.parametrize(
    ("values", "says", "fix"),
    [
        ({"discount": 150}, "variable 'discount' of template 'promo' must be at most 70, got 150",
         "pass an int from 5 to 70"),
        ({"discount": "4"}, "variable 'discount' of template 'promo' must be at least 5, got 4",
         "from 5 to 70"),
        ({"discount": -1}, "must be at least 5, got -1", "from 5 to 70"),
        ({"discount": "9" * 400}, "must be at most 70, got 999", "from 5 to 70"),  # too large for a float
        ({"ratio": "2.01"}, "variable 'ratio' of template 'promo' must be at most 2, got 2.01",
         "pass a float from 0.5 to 2"),
        ({"ratio": 0.49}, "must be at least 0.5, got 0.49", "from 0.5 to 2"),
        ({"ratio": "nan"}, "must be a number from 0.5 to 2, got nan", "from 0.5 to 2"),
        ({"ratio": "inf"}, "must be at most 2, got inf", "from 0.5 to 2"),
        ({"ratio": "-inf"}, "must be at least 0.5, got -inf", "from 0.5 to 2"),
        ({"tagline": "x" * 13},
         "variable 'tagline' of template 'promo' is 13 characters long; the limit is 12",
         "shorten it to at most 12 characters"),
        ({"code": "ab"}, "variable 'code' of template 'promo' is 2 characters long; it needs at least 3",
         "pass a str of at least 3 characters"),
        ({"code": "x" * 301}, "is 301 characters long; the limit is 300", "at most 300 characters"),
    ],
)  # fmt: skip
def test_values_outside_the_limits_name_the_variable_value_limit_and_fix(tmp_path, values, says, fix):
    t = limited(tmp_path)
    with pytest.raises(TemplateError) as info:
        t.render(values)
    (name,) = values
    err = info.value
    assert says in err.message and err.field == f"variables.{name}" and fix in err.fix, str(err)
    assert err.file == str(t.path) and err.value is not None


def test_a_variable_without_limits_keeps_the_global_length_limit(tmp_path):
    t = limited(
        tmp_path,
        'prompt = "{{ x }}"\n[variables.x]\ntype = "str"\n[variables.n]\ntype = "int"\ndefault = 1\n',
    )
    assert t.spec.variables["x"].max_chars == 300 and t.spec.variables["x"].limits_text() == ""
    assert t.coerce({"x": "y" * 300, "n": -(10**9)})["n"] == -(10**9)  # no limits declared: any int
    with pytest.raises(TemplateError, match="the limit is 300"):
        t.coerce({"x": "y" * 301})


def test_shipped_templates_declare_limits():
    lib = TemplateLibrary([shared_templates_dir()])
    promo = lib.get("promo")
    discount = promo.spec.variables["discount"]
    assert (discount.type, discount.min, discount.max, discount.required) == ("int", 5, 70, True)
    r = promo.render({"product": "Night Roast", "discount": "25"})
    assert "Night Roast" in r.prompt and r.cues[1][2] == "Night Roast · 25% off"
    with pytest.raises(TemplateError, match="must be at most 70, got 90"):
        promo.render({"product": "Night Roast", "discount": 90})
    with pytest.raises(TemplateError, match="41 characters long; the limit is 40"):
        promo.render({"product": "N" * 41, "discount": 10})
    hero = lib.get("product-hero")
    assert hero.spec.variables["tagline"].max_length == 60
    assert hero.render({"product": "Night Roast", "tagline": "t" * 60}).cues[1][2] == "t" * 60
    with pytest.raises(TemplateError, match="61 characters long; the limit is 60") as info:
        hero.render({"product": "Night Roast", "tagline": "t" * 61})
    assert info.value.field == "variables.tagline"
