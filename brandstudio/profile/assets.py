"""Asset checks: how each kind of file a profile names is opened when the profile loads.

The profile sits below every stage, so it does not know how to read a LUT, a LoRA or a music
track: each stage registers a check for the kinds of asset it reads
(``ASSET_CHECKS.register("lut", read_lut)``), and :func:`~brandstudio.profile.load_profile`
runs the registered check on every asset, so a profile that validates is one every stage can
open. The checks that need no stage code (fonts, PEM files) are registered here.

``import brandstudio`` imports every stage, so every check is registered before a profile loads.

:func:`read_image` is the one way a profile's image (logo, reference still) is opened: read
with :func:`brandstudio.files.read_user_bytes`, its size taken from the header and checked
against ``$BRANDSTUDIO_MAX_IMAGE_PIXELS`` before a pixel is decoded (a decompression bomb is an
:class:`~brandstudio.errors.AssetError`, not gigabytes of memory).

Example:
    >>> "font" in ASSET_CHECKS   # the stages add theirs ("lut", "logo", "audio", ...) on import
    True
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageFont, UnidentifiedImageError

from ..errors import AssetError
from ..files import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, read_user_bytes
from ..registry import Registry

__all__ = ["ASSET_CHECKS", "asset_check", "read_image"]

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


def read_image(path: str | Path, *, what: str, fix: str) -> Image.Image:
    """Open and decode a profile image within the limits; every failure is an :class:`AssetError`.

    ``what`` names it in messages ("the logo"), ``fix`` is the fix for a file that is not an
    image. The pixel count is read from the header and refused above
    ``$BRANDSTUDIO_MAX_IMAGE_PIXELS`` before anything is decoded.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
        >>> Image.new("RGB", (4, 2)).save(p)
        >>> read_image(p, what="the logo", fix="").size
        (4, 2)
    """
    path = Path(path)
    data = read_user_bytes(path, limit=MAX_IMAGE_BYTES, error=AssetError, what=what)
    limit = MAX_IMAGE_PIXELS.value()

    def too_many(width: int, height: int) -> AssetError:
        return AssetError(
            f"{what} {path.name} is {width}x{height}: "
            + MAX_IMAGE_PIXELS.exceeded(f"{width * height} pixels")
            + " (a decompression bomb, or an image far larger than a video frame)",
            file=str(path),
            fix=f"scale the image down (a 4096x4096 image is plenty); or {MAX_IMAGE_PIXELS.fix()}",
        )

    unreadable = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, MemoryError)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below decides
            img = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as exc:  # past Pillow's own hard limit
        raise AssetError(
            f"{what} {path.name} is a decompression bomb ({exc}): " + MAX_IMAGE_PIXELS.exceeded("too many pixels"),
            file=str(path),
            fix="scale the image down (a 4096x4096 image is plenty)",
        ) from None
    except unreadable as exc:
        raise AssetError(f"{what} {path.name} is not a readable image: {exc}", file=str(path), fix=fix) from None
    width, height = img.size
    if width * height > limit:
        raise too_many(width, height)
    try:
        img.load()
    except unreadable as exc:
        raise AssetError(f"{what} {path.name} is not a readable image: {exc}", file=str(path), fix=fix) from None
    return img
