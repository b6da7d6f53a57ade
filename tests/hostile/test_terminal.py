"""Terminal injection: user and profile text reaches the terminal as text.

A brand name, a CSV cell or a value quoted in an error may hold rich markup (``[bold]``, ``[/]``)
or terminal escape sequences (``ESC [2J`` clears the screen, OSC sets the window title) and bidi
overrides (U+202E shows the rest of the line backwards, hiding text). The CLI runs as a
subprocess here, with colour off, so any ESC byte in its output came from the input.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import PROFILES
from rich.console import Console

from brandstudio.cli.display import SafeConsole, json_text, plain, safe

EVIL_NAME = "\x1b[2J[bold]Evil[/]\u202e"
EVIL_CELL = "\x1b[31m[red]Night Roast[/]\x1b]0;pwned\x07"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}
    env.pop("FORCE_COLOR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "brandstudio.cli", *args], cwd=cwd, env=env, capture_output=True, timeout=120
    )
    assert b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")
    return proc


def assert_clean(proc: subprocess.CompletedProcess) -> str:
    """No ESC, CSI or bidi override in the output; the output as text."""
    raw = proc.stdout + proc.stderr
    assert b"\x1b" not in raw and b"\xc2\x9b" not in raw, raw
    text = raw.decode("utf-8")
    assert "\u202e" not in text and "\x07" not in text
    return text


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string (control characters as \\uXXXX escapes)."""
    return '"' + "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or c in '"\\' else c for c in value) + '"'


@pytest.fixture
def evil_profile(make_profile):
    return make_profile(
        edit=lambda t: t.replace('name = "Aurora Coffee"', f"name = {toml_string(EVIL_NAME)}"), name="evil"
    )


def test_profile_show_prints_a_hostile_brand_name_literally(evil_profile):
    proc = run_cli("profile", "show", str(evil_profile), cwd=evil_profile.parent)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    text = assert_clean(proc)
    assert "[bold]Evil[/] (aurora-coffee)" in text  # the markup as written, not applied


def test_profile_show_json_escapes_what_a_terminal_would_act_on(evil_profile):
    proc = run_cli("profile", "show", str(evil_profile), "--json", cwd=evil_profile.parent)
    assert proc.returncode == 0
    assert_clean(proc)


def test_campaign_plan_prints_hostile_csv_cells_literally(tmp_path):
    (tmp_path / "briefs.csv").write_text(
        f"product,packaging,cta,seed,output\n{EVIL_CELL},a bag,Buy [/] now,11,night\n", encoding="utf-8"
    )
    (tmp_path / "c.toml").write_text(
        f'[campaign]\nname = "c"\nprofile = "{(PROFILES / "aurora-coffee").as_posix()}"\n'
        'template = "product-hero"\ncsv = "briefs.csv"\noutput_dir = "out"\n'
        '[defaults]\nduration = 0.25\nresolution = 64\naspect = "1:1"\n',
        encoding="utf-8",
    )
    proc = run_cli("campaign", "plan", "c.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    text = assert_clean(proc)
    assert "[red]Night Roast[/]" in text and "Buy [/] now" in text


def test_an_error_quoting_a_hostile_value_prints_it_as_text(make_profile):
    bad = "\x1b[2J[/]music/none.m4a"
    prof = make_profile(edit=lambda t: t.replace('"music/bright-brew.m4a"', toml_string(bad)), name="bad")
    proc = run_cli("profile", "validate", str(prof), cwd=prof.parent)
    assert proc.returncode == 2
    text = assert_clean(proc)
    assert "[/]music/none.m4a" in text and "audio.tracks[1]" in text


def test_a_bad_var_is_quoted_without_markup(tmp_path):
    proc = run_cli(
        "render", str(PROFILES / "aurora-coffee"), "product-hero", "--var", "[/]\x1b[2J", cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "--var expects NAME=VALUE, got '[/]" in assert_clean(proc)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[2J[bold]Evil[/]\u202e", "[bold]Evil[/]"),
        ("a\x1b]8;;https://x.example\x1b\\link\x1b]8;;\x1b\\b", "alinkb"),  # OSC 8 hyperlink
        ("title\x1b]0;pwned\x07!", "title!"),  # OSC window title, ended by BEL
        ("x\x9b31my\x1bcz", "xyz"),  # 8-bit CSI; ESC c (reset)
        ("over\rwrite\x08\x00", "overwrite"),
        ("\u2066hidden\u2069 \u200fx", "hidden x"),
        ("tabs\tand\nlines, 中文, emoji 👩\u200d💻", "tabs\tand\nlines, 中文, emoji 👩\u200d💻"),
    ],
)
def test_plain_keeps_only_what_a_terminal_shows(text, shown):
    assert plain(text) == shown


@pytest.mark.parametrize(
    "text", ["[/]", "[bold red]x[/]", "ends in \\", "a\\[b]", "[link=file:///etc/passwd]x", "[/"]
)
def test_safe_text_in_markup_prints_literally(text):
    console = Console(file=None, record=True, width=200, color_system=None)
    console.print(f"[green]ok[/] [bold]{safe(text)}[/]")  # markup on both sides of the text
    assert console.export_text().rstrip("\n") == f"ok {text}"


def test_the_cli_console_drops_escapes_from_any_text_it_renders():
    import io

    from rich.table import Table

    buf = io.StringIO()
    console = SafeConsole(file=buf, force_terminal=True, width=120)
    table = Table("cell")
    table.add_row("x\x1b[2Jy\u202e")
    console.print(table)
    console.print("[green]done[/]")
    out = buf.getvalue()
    assert "xy" in out and "\x1b[2J" not in out and "\u202e" not in out
    assert "\x1b[32m" in out  # rich's own styling still works


def test_json_output_keeps_the_data_and_escapes_controls():
    import json

    raw = json.dumps({"brand": "Evil\u202e\x9b"}, ensure_ascii=False)
    assert json.loads(json_text(raw)) == {"brand": "Evil\u202e\x9b"}
    assert "\u202e" not in json_text(raw) and "\x9b" not in json_text(raw)
