"""The parsers that read untrusted bytes, each behind one function ``parse_<kind>(data: bytes)``.

Shared by the property tests (``test_properties.py``, hypothesis) and the coverage-guided fuzz
run (``fuzz_parsers.py``, atheris). The contract they check: whatever the bytes, a parser
returns a value or raises a :class:`~brandstudio.errors.BrandStudioError`; never another
exception, never a hang.

Each parser writes the bytes where the real input would be and calls brandstudio's own entry
point (the profile loader, the template loader, the campaign CSV reader, the LUT reader, the
safety rules), so what is tested is what users run.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from helpers import PROFILES

from brandstudio.batch.briefs import read_briefs
from brandstudio.post.grade import read_lut
from brandstudio.profile import load_profile
from brandstudio.profile.schema import SafetyRule
from brandstudio.prompts.templates import PromptTemplate
from brandstudio.safety import TextRules

SEEDS_DIR = PROFILES.parent / "templates"
RULES = TextRules(
    blocked_terms=["miracle cure", "减肥"],
    competitors=["Starbucks", "星巴克", "McDonald's"],
    rules=[SafetyRule(id="health", pattern=r"\bcures?\s+\pL+")],
)


class Scratch:
    """A private folder with a copy of the demo profile, reused across calls (one per process)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bs-parsers-"))
        self.profile = self.root / "aurora-coffee"
        shutil.copytree(PROFILES / "aurora-coffee", self.profile)
        self.original_toml = (self.profile / "brand.toml").read_bytes()

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


_scratch: Scratch | None = None


def scratch() -> Scratch:
    global _scratch
    if _scratch is None:
        _scratch = Scratch()
    return _scratch


def _write(name: str, data: bytes) -> Path:
    path = scratch().root / name
    path.write_bytes(data)
    return path


def parse_profile(data: bytes):
    """brand.toml of a profile whose assets are all there."""
    s = scratch()
    (s.profile / "brand.toml").write_bytes(data)
    return load_profile(s.profile)


def parse_template(data: bytes):
    """A template file, loaded and rendered with its defaults (and a value for every required variable)."""
    template = PromptTemplate.load(_write("fuzz.toml", data))
    values = {name: "x" for name, var in template.spec.variables.items() if var.required}
    return template.render(values)


def parse_csv(data: bytes):
    """A campaign's CSV of briefs."""
    return read_briefs(_write("briefs.csv", data), "briefs.csv")


def parse_cube(data: bytes):
    """A ``.cube`` LUT (a new name each time: the reader caches by path, size and mtime)."""
    path = _write("fuzz.cube", data)
    try:
        return read_lut(path)
    finally:
        path.unlink(missing_ok=True)


def parse_safety_text(data: bytes):
    """Text a person typed into a prompt, caption or variable."""
    return RULES.check(data.decode("utf-8", errors="replace"), where="prompt")


PARSERS = {
    "profile": parse_profile,
    "template": parse_template,
    "csv": parse_csv,
    "cube": parse_cube,
    "safety": parse_safety_text,
}


def _small_cube(size: int) -> bytes:
    steps = [i / (size - 1) for i in range(size)]
    rows = [f"{r:.4f} {g:.4f} {b:.4f}" for b in steps for g in steps for r in steps]
    return (f'TITLE "seed"\nLUT_3D_SIZE {size}\n' + "\n".join(rows) + "\n").encode()


def seeds() -> dict[str, list[bytes]]:
    """Real, valid inputs of each kind: the starting points to mutate."""
    profile = PROFILES / "aurora-coffee"
    return {
        "profile": [(profile / "brand.toml").read_bytes()],
        "template": [p.read_bytes() for p in sorted(SEEDS_DIR.glob("*.toml"))[:3]],
        "csv": [b"template,product,aspect\nproduct-hero,Night Roast,9:16\nlifestyle,\xe7\xa2\xa7\xe8\x9e\xba,1:1\n"],
        "cube": [_small_cube(3), b"LUT_1D_SIZE 2\n0 0 0\n1 1 1\n"],
        "safety": ["Better than Ѕtаrbuсks #TryMiracleCure 減肥 it cures cancer".encode()],
    }
