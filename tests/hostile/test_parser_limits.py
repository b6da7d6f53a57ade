"""Limits on every parser of user input: each a clear error that names the limit and how to raise it.

TOML (file size, nesting depth, null bytes), CSV briefs (rows, cell size, null bytes), images
(pixel count: decompression bombs), templates (loop iterations, render time, output and value
size) and ``.cube`` LUTs (declared size, declared vs actual rows, non-finite numbers). Each
through the Python API, under an alarm that turns a hang into a failure (``no_hang``), and
through the CLI as a subprocess (exit 2, the message names the file and the limit, no
"Traceback"). The limits and their environment variables are listed in brandstudio/files.py.
"""

from __future__ import annotations

import shutil
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import PROFILES
from hostile import CAMPAIGN, assert_clean_exit_2, no_hang, run_cli
from PIL import Image

from brandstudio.batch.briefs import read_briefs
from brandstudio.campaign import load_campaign
from brandstudio.errors import AssetError, BrandStudioError, CampaignError, ProfileError, TemplateError
from brandstudio.post.grade import read_lut
from brandstudio.post.logo import load_logo
from brandstudio.post.match import load_reference
from brandstudio.profile import load_profile
from brandstudio.prompts.templates import PromptTemplate


@pytest.fixture
def profile(tmp_path) -> Path:
    dest = tmp_path / "aurora-coffee"
    shutil.copytree(PROFILES / "aurora-coffee", dest)
    return dest


def append(path: Path, text: str) -> Path:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")
    return path


# -- TOML ---------------------------------------------------------------------------------------

DEEP_ARRAY = "\n[deep]\nx = " + "[" * 100_000 + "]" * 100_000 + "\n"


def test_toml_nested_100000_deep_is_refused_before_parsing(profile, tmp_path):
    append(profile / "brand.toml", DEEP_ARRAY)
    t0 = time.perf_counter()
    with no_hang(), pytest.raises(ProfileError) as e:
        load_profile(profile)
    assert "nests too deeply" in e.value.message and "BRANDSTUDIO_MAX_TOML_DEPTH" in e.value.message
    assert "export BRANDSTUDIO_MAX_TOML_DEPTH=" in e.value.fix and e.value.file == "brand.toml"
    assert time.perf_counter() - t0 < 5

    template = tmp_path / "deep.toml"
    template.write_text('prompt = "x"\n' + DEEP_ARRAY)
    with no_hang(), pytest.raises(TemplateError, match="BRANDSTUDIO_MAX_TOML_DEPTH"):
        PromptTemplate.load(template)
    campaign = tmp_path / "spring.toml"
    campaign.write_text(CAMPAIGN.format(profile=profile) + DEEP_ARRAY)
    with no_hang(), pytest.raises(CampaignError, match="BRANDSTUDIO_MAX_TOML_DEPTH"):
        load_campaign(campaign)
    assert_clean_exit_2(run_cli("profile", "validate", str(profile), cwd=tmp_path),
                        "nests too deeply", "BRANDSTUDIO_MAX_TOML_DEPTH", "brand.toml")  # fmt: skip


def test_toml_deep_inline_tables_and_dotted_keys(tmp_path):
    for body in ("x = " + "{a = " * 5000 + "1" + "}" * 5000, "a" + ".a" * 5000 + " = 1"):
        path = tmp_path / "deep.toml"
        path.write_text('prompt = "x"\n' + body + "\n")
        with no_hang(), pytest.raises(TemplateError, match="BRANDSTUDIO_MAX_TOML_DEPTH"):
            PromptTemplate.load(path)


def test_toml_depth_scan_ignores_brackets_inside_strings_and_comments(tmp_path):
    path = tmp_path / "brackets.toml"
    path.write_text(
        "# " + "[" * 100 + "\n"
        'prompt = "' + "[[[" * 40 + '"\n'
        "description = '''" + "{" * 100 + "'''\n"
        'music_mood = """' + '\\"[' * 50 + '"""\n'
    )
    assert PromptTemplate.load(path).spec.prompt == "[[[" * 40


def test_jinja_expression_nested_too_deeply_to_parse(tmp_path):
    path = tmp_path / "deep.toml"
    for prompt in (
        "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
        "{{ " + "{" * 3000 + " }}",
        "{{ " + "[" * 3000,
    ):
        path.write_text(f"prompt = '''{prompt}'''\n")
        with no_hang(), pytest.raises(TemplateError, match="too deeply"):
            PromptTemplate.load(path)


def test_oversized_toml_names_the_limit_and_the_variable_raises_it(profile, monkeypatch):
    append(profile / "brand.toml", "\n# " + "x" * (1 << 20) + "\n")
    with no_hang(), pytest.raises(ProfileError) as e:
        load_profile(profile)
    assert "too large" in e.value.message and "BRANDSTUDIO_MAX_TOML_BYTES" in e.value.message
    assert "export BRANDSTUDIO_MAX_TOML_BYTES=2097152" in e.value.fix
    monkeypatch.setenv("BRANDSTUDIO_MAX_TOML_BYTES", str(4 << 20))
    assert load_profile(profile).id == "aurora-coffee"
    monkeypatch.setenv("BRANDSTUDIO_MAX_TOML_BYTES", "lots")
    with pytest.raises(BrandStudioError, match=r"\$BRANDSTUDIO_MAX_TOML_BYTES must be a positive number"):
        load_profile(profile)


def test_null_bytes_in_toml_values(profile, tmp_path):
    toml = profile / "brand.toml"
    toml.write_text(toml.read_text().replace('name = "Aurora Coffee"', 'name = "Aurora\\u0000Coffee"'))
    with pytest.raises(ProfileError, match="null byte") as e:
        load_profile(profile)
    assert e.value.field == "brand.name" and e.value.file == "brand.toml"
    template = tmp_path / "nul.toml"
    template.write_text('prompt = "{{ product }}"\n[variables.product]\ndefault = "Night\\u0000Roast"\n')
    with pytest.raises(TemplateError, match="null byte") as e:
        PromptTemplate.load(template)
    assert e.value.field == "variables.product.default"
    template.write_text('prompt = "{{ product }}"\n[variables.product]\n')
    with pytest.raises(TemplateError, match="control characters"):  # a value passed at render time
        PromptTemplate.load(template).render({"product": "Night\x00Roast"})


# -- CSV briefs -----------------------------------------------------------------------------------


def write_campaign(folder: Path, csv_bytes: bytes) -> Path:
    (folder / "briefs.csv").write_bytes(csv_bytes)
    path = folder / "spring.toml"
    path.write_text(CAMPAIGN.format(profile=PROFILES / "aurora-coffee"))
    return path


def test_csv_with_a_10_mb_cell(tmp_path):
    path = write_campaign(tmp_path, b'product,aspect\nNight Roast,9:16\n"' + b"x" * (10 << 20) + b'",1:1\n')
    with no_hang(), pytest.raises(CampaignError) as e:
        load_campaign(path)
    assert "too long on line 3" in e.value.message and "BRANDSTUDIO_MAX_CSV_CELL" in e.value.message
    assert "export BRANDSTUDIO_MAX_CSV_CELL=" in e.value.fix
    assert_clean_exit_2(run_cli("campaign", "plan", "spring.toml", cwd=tmp_path),
                        "briefs.csv", "BRANDSTUDIO_MAX_CSV_CELL")  # fmt: skip


def test_csv_cell_limit_is_the_variable_not_the_csv_modules_default(tmp_path, monkeypatch):
    cell = b"y" * 200_000  # over the csv module's own default (131072)
    (tmp_path / "briefs.csv").write_bytes(b"product\n" + cell + b"\n")
    with pytest.raises(CampaignError, match="BRANDSTUDIO_MAX_CSV_CELL"):
        read_briefs(tmp_path / "briefs.csv", "briefs.csv")
    monkeypatch.setenv("BRANDSTUDIO_MAX_CSV_CELL", "300000")
    rows = read_briefs(tmp_path / "briefs.csv", "briefs.csv")
    assert len(rows[0].values["product"]) == 200_000
    monkeypatch.setenv("BRANDSTUDIO_MAX_CSV_CELL", "10")
    (tmp_path / "briefs.csv").write_bytes(b"product\nNight Roast Blend\n")
    with pytest.raises(CampaignError, match="too long on line 2"):
        read_briefs(tmp_path / "briefs.csv", "briefs.csv")


def test_csv_with_too_many_rows(tmp_path, monkeypatch):
    (tmp_path / "briefs.csv").write_bytes(b"product\n" + b"x\n" * 100_001)
    with no_hang(), pytest.raises(CampaignError) as e:
        read_briefs(tmp_path / "briefs.csv", "briefs.csv")
    assert "too many rows" in e.value.message and "BRANDSTUDIO_MAX_CSV_ROWS" in e.value.message
    monkeypatch.setenv("BRANDSTUDIO_MAX_CSV_ROWS", "3")
    (tmp_path / "briefs.csv").write_bytes(b"product\na\nb\nc\n")
    assert len(read_briefs(tmp_path / "briefs.csv", "briefs.csv")) == 3
    path = write_campaign(tmp_path, b"product\na\nb\nc\nd\n")
    with pytest.raises(CampaignError, match="too many rows"):
        load_campaign(path)
    proc = run_cli("campaign", "plan", "spring.toml", cwd=tmp_path, env={"BRANDSTUDIO_MAX_CSV_ROWS": "3"})
    assert_clean_exit_2(proc, "too many rows", "BRANDSTUDIO_MAX_CSV_ROWS")


def test_csv_null_bytes_are_refused_with_the_line(tmp_path):
    path = write_campaign(tmp_path, b"product,aspect\nNight\x00Roast,9:16\n")
    with pytest.raises(CampaignError) as e:
        load_campaign(path)
    assert "null byte" in e.value.message and "line 2" in e.value.message


def test_oversized_csv_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BRANDSTUDIO_MAX_CSV_BYTES", "100")
    (tmp_path / "briefs.csv").write_bytes(b"product\n" + b"Night Roast\n" * 20)
    with pytest.raises(CampaignError, match="too large.*BRANDSTUDIO_MAX_CSV_BYTES"):
        read_briefs(tmp_path / "briefs.csv", "briefs.csv")


# -- images ---------------------------------------------------------------------------------------


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG of a few hundred bytes whose header says ``width`` x ``height`` (1-bit grey)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = zlib.compress(b"\x00" * (1 + (width + 7) // 8) * 4)  # the first 4 rows only
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("size", [(20_000, 20_000), (10_000, 10_000)])
def test_png_bomb_is_refused_from_its_header(tmp_path, size):
    """20000x20000 is past Pillow's own hard limit; 10000x10000 is under it (Pillow only warns and
    would decode 100 M pixels) but over brandstudio's."""
    bomb = png_claiming(tmp_path / "bomb.png", *size)
    assert bomb.stat().st_size < 10_000
    for reader in (load_logo, load_reference):
        t0 = time.perf_counter()
        with no_hang(), pytest.raises(AssetError) as e:
            reader(bomb)
        assert "BRANDSTUDIO_MAX_IMAGE_PIXELS" in e.value.message and e.value.file == str(bomb)
        assert time.perf_counter() - t0 < 2


def test_image_pixel_limit_is_the_variable(tmp_path, monkeypatch):
    Image.fromarray(np.full((64, 64, 4), 200, np.uint8)).save(tmp_path / "logo.png")
    assert load_logo(tmp_path / "logo.png").shape == (64, 64, 4)
    monkeypatch.setenv("BRANDSTUDIO_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(AssetError, match="64x64.*4096 pixels; the limit is 1000") as e:
        load_logo(tmp_path / "logo.png")
    assert "export BRANDSTUDIO_MAX_IMAGE_PIXELS=2000" in e.value.fix


def test_png_bomb_as_the_profile_logo(profile, tmp_path):
    png_claiming(profile / "logo.png", 20_000, 20_000)
    with no_hang(), pytest.raises(AssetError, match="BRANDSTUDIO_MAX_IMAGE_PIXELS") as e:
        load_profile(profile)
    assert e.value.field == "logo.file" and e.value.file == "logo.png"
    assert_clean_exit_2(run_cli("profile", "validate", str(profile), cwd=tmp_path),
                        "logo.png", "BRANDSTUDIO_MAX_IMAGE_PIXELS")  # fmt: skip


# -- templates ----------------------------------------------------------------------------------------


def template(tmp_path: Path, prompt: str, name: str = "t") -> PromptTemplate:
    path = tmp_path / f"{name}.toml"
    path.write_text(f"prompt = '''{prompt}'''\n[variables.product]\ndefault = \"Night Roast\"\n")
    return PromptTemplate.load(path)


NESTED_LOOPS = (
    "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}"
    "{% endfor %}{% endfor %}{% endfor %}{{ product }}"
)


def test_nested_loops_that_multiply(tmp_path):
    """Each loop is under the sandbox's range limit (100000); together they are 10^9 iterations."""
    t0 = time.perf_counter()
    with no_hang(), pytest.raises(TemplateError) as e:
        template(tmp_path, NESTED_LOOPS).render({})
    assert "more than 10000 loop iterations" in e.value.message and e.value.field == "prompt"
    assert "export BRANDSTUDIO_MAX_TEMPLATE_LOOPS=20000" in e.value.fix
    assert time.perf_counter() - t0 < 2


def test_loops_over_literals_and_strings_count_too(tmp_path):
    letters = "x" * 200
    body = f"{{% for a in '{letters}' %}}{{% for b in '{letters}' %}}{{% endfor %}}{{% endfor %}}"
    with no_hang(), pytest.raises(TemplateError, match="BRANDSTUDIO_MAX_TEMPLATE_LOOPS"):
        template(tmp_path, body).render({})


def test_megabytes_of_text(tmp_path):
    body = "{% for i in range(100000) %}{{ product }} and {% endfor %}"
    with no_hang(), pytest.raises(TemplateError) as e:
        template(tmp_path, body).render({})
    assert "produces more than 20000 characters" in e.value.message
    assert "BRANDSTUDIO_MAX_TEMPLATE_OUTPUT" in e.value.fix


@pytest.mark.parametrize(
    "expression",
    [
        "{{ product * 10000000 }}",
        '{{ "x" * 10000000 }}',
        '{{ ["x"] * 10000000 }}',
        "{% set ns = namespace(s=product) %}{% for i in range(26) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
        "{{ ns.s|length }}",
        "{% set ns = namespace(s=product) %}{% for i in range(26) %}{% set ns.s = ns.s + ns.s %}{% endfor %}"
        "{{ ns.s|length }}",
        '{% set s = product * 1000 %}{{ s|replace("N", s)|length }}',
        '{% set s = product * 1000 %}{{ s.replace("N", s)|length }}',
        "{% set s = product * 1000 %}{{ s.join([s, s, s])|length }}",
        "{{ product.center(100000000) }}",
        "{{ product|center(100000000) }}",
        '{{ "{:>100000000}".format(product) }}',
        '{{ "%100000000s" % product }}',
        '{{ "%100000000s"|format(product) }}',
        '{% set s = "\n" * 1000 %}{{ s|indent(100000)|length }}',
    ],
)
def test_huge_values_are_refused_before_they_are_built(tmp_path, expression):
    with no_hang(), pytest.raises(TemplateError, match="BRANDSTUDIO_MAX_TEMPLATE_OUTPUT"):
        template(tmp_path, expression).render({})


def test_huge_numbers(tmp_path):
    with no_hang(), pytest.raises(TemplateError, match="4096 bits"):
        template(tmp_path, "{{ 2 ** 100000000 }}").render({})
    with no_hang(), pytest.raises(TemplateError, match="4096 bits"):
        template(tmp_path, "{% set n = 2 ** 4000 %}{{ n * n }}").render({})


def test_render_time_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("BRANDSTUDIO_MAX_TEMPLATE_SECONDS", "0.001")
    body = "{% for i in range(9000) %}{% set x = (product ~ i)|upper|list|sort %}{% endfor %}{{ product }}"
    with no_hang(), pytest.raises(TemplateError) as e:
        template(tmp_path, body).render({})
    assert "took longer than 0.001 s" in e.value.message and "BRANDSTUDIO_MAX_TEMPLATE_SECONDS" in e.value.fix


def test_recursion_is_refused(tmp_path):
    with no_hang(), pytest.raises(TemplateError, match="recurs"):
        template(tmp_path, "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}").render({})
    with pytest.raises(TemplateError, match="recursive loops are not allowed"):
        template(tmp_path, "{% for x in [[1]] recursive %}{{ loop(x) }}{% endfor %}")


def test_the_sandbox_is_still_a_sandbox_and_ordinary_templates_render(tmp_path):
    for escape in ("{{ product.__class__.__mro__ }}", "{{ range.__init__.__globals__ }}",
                   "{{ cycler.__init__.__globals__.os }}"):  # fmt: skip
        with pytest.raises(TemplateError, match="sandbox|undefined|unsafe"):
            template(tmp_path, escape).render({})
    with pytest.raises(TemplateError, match="lipsum"):  # filler text of any size: removed
        template(tmp_path, "{{ lipsum(5) }}").render({})
    body = (
        "{% for w in product.split() %}{{ w|upper }}{% if not loop.last %}-{% endif %}{% endfor %}, "
        "{{ '%s beans' % product }}, {{ '{} x{}'.format(product, 3) }}, {{ [product, 'cup']|join(' / ') }}, "
        "{{ product|replace('Night', 'Day') }}, {{ (product ~ '!') * 2 }}, {{ range(3)|list|sum }}"
    )
    rendered = template(tmp_path, body).render({"product": "Night Roast"})
    assert rendered.prompt == (
        "NIGHT-ROAST, Night Roast beans, Night Roast x3, Night Roast / cup, Day Roast, "
        "Night Roast!Night Roast!, 3"
    )


def test_cli_render_with_multiplying_loops_exits_2_quickly(profile, tmp_path):
    (profile / "templates").mkdir(exist_ok=True)
    (profile / "templates" / "loops.toml").write_text(f"description = 'loops'\nprompt = '''{NESTED_LOOPS}'''\n"
                                                      "[variables.product]\ndefault = 'Night Roast'\n")  # fmt: skip
    t0 = time.perf_counter()
    proc = run_cli("render", str(profile), "loops", "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert_clean_exit_2(proc, "loops.toml", "BRANDSTUDIO_MAX_TEMPLATE_LOOPS")
    assert time.perf_counter() - t0 < 30
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# -- .cube LUTs ----------------------------------------------------------------------------------------


def cube(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


IDENTITY_2 = [f"{r} {g} {b}" for b in (0, 1) for g in (0, 1) for r in (0, 1)]


def test_cube_claiming_size_10000(tmp_path):
    path = cube(tmp_path / "huge.cube", "LUT_3D_SIZE 10000", IDENTITY_2)
    t0 = time.perf_counter()
    with no_hang(), pytest.raises(AssetError) as e:
        read_lut(path)
    assert "LUT_3D_SIZE 10000" in e.value.message and "BRANDSTUDIO_MAX_LUT_SIZE" in e.value.message
    assert "export BRANDSTUDIO_MAX_LUT_SIZE=258" in e.value.fix
    assert time.perf_counter() - t0 < 2
    path = cube(tmp_path / "huge1d.cube", "LUT_1D_SIZE 100000000", ["0 0 0", "1 1 1"])
    with no_hang(), pytest.raises(AssetError, match="BRANDSTUDIO_MAX_LUT_1D_SIZE"):
        read_lut(path)


def test_cube_declared_size_against_its_rows(tmp_path):
    path = cube(tmp_path / "short.cube", "LUT_3D_SIZE 33", IDENTITY_2)
    with pytest.raises(AssetError, match=r"declares LUT_3D_SIZE 33 \(35937 rows of numbers\) but holds 8"):
        read_lut(path)
    path = cube(tmp_path / "bad.cube", "LUT_3D_SIZE banana", IDENTITY_2)
    with pytest.raises(AssetError, match="whole number"):
        read_lut(path)


def test_cube_with_a_shaper_still_reads(tmp_path):
    path = cube(tmp_path / "shaped.cube", "LUT_1D_SIZE 2\nLUT_3D_SIZE 2", ["0 0 0", "1 1 1", *IDENTITY_2])
    lut = read_lut(path)
    assert lut.dimensions == 3 and lut.size == 2 and lut.shaper is not None


@pytest.mark.parametrize("bad", ["nan 0 0", "0 inf 0", "0 0 1e999"])
def test_cube_with_non_finite_numbers(tmp_path, bad):
    path = cube(tmp_path / "nan.cube", "LUT_3D_SIZE 2", [bad, *IDENTITY_2[1:]])
    with pytest.raises(AssetError, match="non-finite"):
        read_lut(path)


def test_cube_limits_through_the_profile_and_the_cli(profile, tmp_path):
    cube(profile / "luts" / "aurora-warm.cube", "LUT_3D_SIZE 10000", IDENTITY_2)
    with no_hang(), pytest.raises(AssetError, match="BRANDSTUDIO_MAX_LUT_SIZE") as e:
        load_profile(profile)
    assert e.value.field == "colour.lut" and e.value.file == "luts/aurora-warm.cube"
    assert_clean_exit_2(run_cli("profile", "validate", str(profile), cwd=tmp_path),
                        "luts/aurora-warm.cube", "BRANDSTUDIO_MAX_LUT_SIZE")  # fmt: skip
