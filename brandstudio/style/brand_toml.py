"""Editing a profile's brand.toml in place: write the new text, and put the old back if the
profile no longer loads, so `lut fit --apply` and `lora train --add` never leave a broken profile."""

from __future__ import annotations

from pathlib import Path

from ..errors import BrandStudioError
from ..files import write_text_atomic
from ..profile import load_profile

__all__ = ["rewrite_brand_toml"]


def rewrite_brand_toml(root: Path, original: str, updated: str) -> None:
    """Write ``updated`` as the profile's brand.toml; if the profile then fails to load, put
    ``original`` back and raise the load's error (a profile is never left broken)."""
    toml = Path(root) / "brand.toml"
    write_text_atomic(toml, updated)
    try:
        load_profile(root)
    except BrandStudioError:
        write_text_atomic(toml, original)
        raise
