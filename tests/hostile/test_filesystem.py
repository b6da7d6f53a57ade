"""Hostile files: what sits where a profile or user file is expected.

A FIFO (which blocks whoever opens it), a folder, a symlink loop, a null byte in the path, a
file this user cannot read, and text that is not UTF-8, each where brand.toml, a template, a
campaign CSV, a logo or a LUT should be. Every case is one clear error (the usual
BrandStudioError: message, file, fix) within seconds: never a traceback, never a hang.
Through the Python API, and through the CLI as a subprocess (exit 2, no "Traceback").

Each API call runs under an alarm (``no_hang``): a FIFO that blocks fails the test instead of
hanging the suite.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import PROFILES
from hostile import CAMPAIGN, assert_clean_exit_2, no_hang, run_cli

from brandstudio.batch.briefs import read_briefs
from brandstudio.campaign import load_campaign
from brandstudio.errors import AssetError, CampaignError, ProfileError, TemplateError
from brandstudio.post.grade import read_lut
from brandstudio.post.logo import load_logo
from brandstudio.post.match import load_reference
from brandstudio.profile import load_profile
from brandstudio.prompts.templates import PromptTemplate, TemplateLibrary


@pytest.fixture
def profile(tmp_path) -> Path:
    dest = tmp_path / "aurora-coffee"
    shutil.copytree(PROFILES / "aurora-coffee", dest)
    return dest


def replace_with(path: Path, kind: str) -> Path:
    """Put a FIFO, a folder or a symlink loop where the file ``path`` is."""
    if path.exists() or path.is_symlink():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
        (path / "inside.txt").write_text("x")
    elif kind == "loop":
        other = path.with_name(path.name + ".loop")
        os.symlink(other.name, path)
        os.symlink(path.name, other)
    return path


WHAT = {"fifo": "FIFO", "folder": "a folder", "loop": "symlink loop"}
KINDS = list(WHAT)


# -- FIFOs, folders and symlink loops -----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_brand_toml(profile, kind):
    replace_with(profile / "brand.toml", kind)
    with no_hang(), pytest.raises(ProfileError) as e:
        load_profile(profile)
    assert WHAT[kind] in e.value.message and e.value.file == "brand.toml" and e.value.fix


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("asset", ["logo.png", "luts/aurora-warm.cube", "fonts/NotoSerif-Bold.ttf"])
def test_asset_named_by_the_profile(profile, kind, asset):
    assert (profile / asset).is_file(), f"the demo profile has no {asset}: update the list above"
    replace_with(profile / asset, kind)
    with no_hang(), pytest.raises(AssetError) as e:
        load_profile(profile)
    assert WHAT[kind] in e.value.message and e.value.file == asset and e.value.field and e.value.fix


@pytest.mark.parametrize("kind", KINDS)
def test_template(profile, kind):
    (profile / "templates").mkdir(exist_ok=True)
    replace_with(profile / "templates" / "hero.toml", kind)
    library = TemplateLibrary.for_profile(profile)
    with no_hang(), pytest.raises(TemplateError) as e:
        library.get("hero")
    assert WHAT[kind] in e.value.message and e.value.file.endswith("hero.toml")
    with no_hang(), pytest.raises(ProfileError, match=WHAT[kind]):  # the loader hashes profile templates
        load_profile(profile)


@pytest.mark.parametrize("kind", KINDS)
def test_campaign_csv_and_file(tmp_path, kind):
    (tmp_path / "spring.toml").write_text(CAMPAIGN.format(profile=PROFILES / "aurora-coffee"))
    replace_with(tmp_path / "briefs.csv", kind)
    with no_hang(), pytest.raises(CampaignError) as e:
        load_campaign(tmp_path / "spring.toml")
    assert WHAT[kind] in e.value.message and e.value.field == "campaign.csv"
    replace_with(tmp_path / "spring.toml", kind)
    with no_hang(), pytest.raises(CampaignError, match=WHAT[kind]):
        load_campaign(tmp_path / "spring.toml")


@pytest.mark.parametrize("kind", KINDS)
def test_readers_used_by_a_render(tmp_path, kind):
    """The post stage's own readers, as a render calls them (not only through the loader)."""
    for reader, name in ((load_logo, "logo.png"), (load_reference, "still.png"), (read_lut, "grade.cube")):
        path = replace_with(tmp_path / name, kind)
        with no_hang(), pytest.raises(AssetError) as e:
            reader(path)
        assert WHAT[kind] in e.value.message, (name, e.value.message)


def test_cli_fifo_brand_toml_and_csv_exit_2_without_hanging(profile, tmp_path):
    replace_with(profile / "brand.toml", "fifo")
    proc = run_cli("profile", "validate", str(profile), cwd=tmp_path)
    assert_clean_exit_2(proc, "FIFO", "brand.toml")

    (tmp_path / "spring.toml").write_text(CAMPAIGN.format(profile=PROFILES / "aurora-coffee"))
    replace_with(tmp_path / "briefs.csv", "fifo")
    proc = run_cli("campaign", "plan", "spring.toml", cwd=tmp_path)
    assert_clean_exit_2(proc, "FIFO", "briefs.csv")


def test_cli_symlink_loop_and_folder(profile, tmp_path):
    replace_with(profile / "luts" / "aurora-warm.cube", "loop")
    assert_clean_exit_2(
        run_cli("profile", "validate", str(profile), cwd=tmp_path), "symlink loop", "colour.lut"
    )
    (profile / "luts" / "aurora-warm.cube").unlink()
    replace_with(profile / "luts" / "aurora-warm.cube", "folder")
    assert_clean_exit_2(run_cli("profile", "validate", str(profile), cwd=tmp_path), "a folder", "colour.lut")


# -- null bytes in paths --------------------------------------------------------------------------


def test_null_byte_in_paths(tmp_path):
    with pytest.raises(ProfileError, match="null byte"):
        load_profile(str(tmp_path / "aurora\x00coffee"))
    with pytest.raises(TemplateError, match="null byte"):
        PromptTemplate.load(tmp_path / "hero\x00.toml")
    with pytest.raises(CampaignError, match="null byte"):
        load_campaign(str(tmp_path / "spring\x00.toml"))
    with pytest.raises(CampaignError, match="null byte"):
        read_briefs(tmp_path / "briefs\x00.csv", "briefs\x00.csv")
    for reader in (load_logo, load_reference, read_lut):
        with pytest.raises(AssetError, match="null byte"):
            reader(str(tmp_path / "x\x00.png"))


def test_null_byte_in_a_path_named_by_a_file(profile, tmp_path):
    """A ``\\u0000`` escape in brand.toml or a campaign file: refused when the TOML is read."""
    toml = profile / "brand.toml"
    toml.write_text(
        toml.read_text().replace('lut = "luts/aurora-warm.cube"', 'lut = "luts/aurora\\u0000.cube"')
    )
    with pytest.raises(ProfileError, match="null byte") as e:
        load_profile(profile)
    assert e.value.field == "colour.lut"
    (tmp_path / "spring.toml").write_text(
        CAMPAIGN.format(profile=PROFILES / "aurora-coffee").replace('"briefs.csv"', '"briefs\\u0000.csv"')
    )
    with pytest.raises(CampaignError, match="null byte") as e:
        load_campaign(tmp_path / "spring.toml")
    assert e.value.field == "campaign.csv"
    proc = run_cli("campaign", "plan", "spring.toml", cwd=tmp_path)
    assert_clean_exit_2(proc, "null byte", "campaign.csv")


# -- permission denied ------------------------------------------------------------------------------

needs_non_root = pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file: permissions cannot be tested"
)


@needs_non_root
def test_unreadable_files(profile, tmp_path):
    (profile / "brand.toml").chmod(0)
    with pytest.raises(ProfileError, match="permission denied"):
        load_profile(profile)
    (profile / "brand.toml").chmod(0o644)
    (profile / "logo.png").chmod(0)
    with pytest.raises(AssetError, match="permission denied") as e:
        load_profile(profile)
    assert e.value.field == "logo.file"
    (tmp_path / "spring.toml").write_text(CAMPAIGN.format(profile=PROFILES / "aurora-coffee"))
    (tmp_path / "briefs.csv").write_text("product\nNight Roast\n")
    (tmp_path / "briefs.csv").chmod(0)
    with pytest.raises(CampaignError, match="permission denied"):
        load_campaign(tmp_path / "spring.toml")
    assert_clean_exit_2(run_cli("campaign", "plan", "spring.toml", cwd=tmp_path), "permission denied")


# -- text that is not UTF-8 ---------------------------------------------------------------------------

LATIN1 = "Café Crème".encode("latin-1")  # é is 0xe9: not UTF-8


def test_non_utf8_brand_toml(profile):
    toml = profile / "brand.toml"
    toml.write_bytes(toml.read_bytes().replace(b'name = "Aurora Coffee"', b'name = "' + LATIN1 + b'"'))
    with pytest.raises(ProfileError) as e:
        load_profile(profile)
    line = toml.read_bytes()[: toml.read_bytes().index(LATIN1)].count(b"\n") + 1
    assert "not UTF-8" in e.value.message and f"(line {line})" in e.value.message and "UTF-8" in e.value.fix


def test_non_utf8_template(tmp_path):
    path = tmp_path / "hero.toml"
    path.write_bytes(b'description = "x"\nprompt = "' + LATIN1 + b'"\n')
    with pytest.raises(TemplateError) as e:
        PromptTemplate.load(path)
    assert "not UTF-8 text" in e.value.message and "0xe9 at byte 31 (line 2)" in e.value.message
    assert "save it as UTF-8" in e.value.fix


def test_non_utf8_csv_names_the_line(tmp_path):
    (tmp_path / "spring.toml").write_text(CAMPAIGN.format(profile=PROFILES / "aurora-coffee"))
    (tmp_path / "briefs.csv").write_bytes(b"product,aspect\nNight Roast,9:16\n" + LATIN1 + b",1:1\n")
    with pytest.raises(CampaignError) as e:
        load_campaign(tmp_path / "spring.toml")
    assert "not UTF-8 text" in e.value.message and "(line 3)" in e.value.message
    assert "CSV UTF-8" in e.value.fix
    proc = run_cli("campaign", "plan", "spring.toml", cwd=tmp_path)
    assert_clean_exit_2(proc, "not UTF-8", "line 3", "briefs.csv")


def test_utf8_with_a_byte_order_mark_still_reads(tmp_path):
    (tmp_path / "briefs.csv").write_bytes("\ufeffproduct\nCafé\n".encode())
    assert read_briefs(tmp_path / "briefs.csv", "briefs.csv")[0].values == {"product": "Café"}


def test_unreadable_file_message_without_root_bypass(profile, monkeypatch):
    """The same path as the chmod test above, where root would bypass the permission: the
    access check is made to say "no" as it does for an ordinary user."""
    real_access = os.access
    blocked = profile / "logo.png"
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != blocked and real_access(p, mode, **kw))
    with pytest.raises(AssetError, match="permission denied") as e:
        load_profile(profile)
    assert e.value.field == "logo.file" and "chmod" in e.value.fix


@pytest.mark.parametrize("kind", ["fifo", "folder", "symlink loop"])
def test_qc_and_voiceover_refuse_what_is_not_a_file_without_blocking(kind, tmp_path):
    """`brandstudio qc X` and `render --voiceover X` on a FIFO (opening it would block), a folder
    or a symlink loop: exit 2 naming what it is, at once."""
    target = tmp_path / "clip.mp4"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    else:
        target.symlink_to(target)
    said = {"fifo": "FIFO", "folder": "folder", "symlink loop": "symlink loop"}[kind]
    proc = run_cli("qc", str(target), "--profile", str(PROFILES / "aurora-coffee"), cwd=tmp_path)
    assert_clean_exit_2(proc, "the clip", said)
    proc = run_cli("render", str(PROFILES / "aurora-coffee"), "product-hero", "-v", "product=X",
                   "--voiceover", str(target), "--duration", "1", "--resolution", "96",
                   "--output-dir", str(tmp_path / "out"), cwd=tmp_path)  # fmt: skip
    assert_clean_exit_2(proc, "the voice-over", said, "voiceover")
    assert not (tmp_path / "out").exists()
