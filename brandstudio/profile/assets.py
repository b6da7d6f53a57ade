"""Asset checks: how each kind of file a profile names is opened when the profile loads.

The profile sits below every stage, so it does not know how to read a LUT, a LoRA or a music
track: each stage registers a check for the kinds of asset it reads
(``ASSET_CHECKS.register("lut", read_lut)``), and :func:`~brandstudio.profile.load_profile`
runs the registered check on every asset, so a profile that validates is one every stage can
open. The checks that need no stage code (fonts, PEM files) are registered here.

``import brandstudio`` imports every stage, so every check is registered before a profile loads.

Example:
    >>> sorted(ASSET_CHECKS)[:3]
    ['audio', 'font', 'logo']
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import ImageFont

from ..registry import Registry

__all__ = ["ASSET_CHECKS", "asset_check"]

#: kind of asset → a function that opens the file the way a render will (raising on a bad file)
ASSET_CHECKS: Registry[Callable[[Path], object]] = Registry("asset kind")


@ASSET_CHECKS.register("font")
def _check_font(path: Path) -> None:

    ImageFont.truetype(str(path), 24)


@ASSET_CHECKS.register("pem-certs")
def _check_pem_certs(path: Path) -> None:
    from cryptography import x509

    x509.load_pem_x509_certificates(path.read_bytes())


@ASSET_CHECKS.register("pem-key")
def _check_pem_key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    serialization.load_pem_private_key(path.read_bytes(), password=None)


def asset_check(kind: str) -> Callable[[Path], object]:
    """The registered check for ``kind`` (a lookup at call time, so registration order does not matter)."""

    def check(path: Path) -> object:
        return ASSET_CHECKS[ASSET_CHECKS.check(kind)](path)

    return check
