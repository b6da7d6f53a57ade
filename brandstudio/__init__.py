"""brandstudio: brand-consistent marketing video from a brand profile and a brief.

Example:
    >>> from brandstudio import BrandStudio
    >>> studio = BrandStudio("brand_profiles/aurora-coffee")                          # doctest: +SKIP
    >>> clip = studio.render("product-hero", product="Night Roast", aspect="9:16")    # doctest: +SKIP
    >>> clip.path, clip.duration, clip.size                                           # doctest: +SKIP
"""

from __future__ import annotations

from . import errors
from ._version import __version__
from .errors import *  # noqa: F403 - the whole error tree is public (errors.__all__)
from .logs import quiet_import_notices
from .profile import BrandProfile, load_profile
from .progress import Progress, tqdm_progress
from .request import RenderRequest, RenderResult
from .studio import BrandStudio

quiet_import_notices()  # torchao/torch/transformers import-time notices (brandstudio.logs)

__all__ = [
    "BrandProfile",
    "BrandStudio",
    "Progress",
    "RenderRequest",
    "RenderResult",
    "__version__",
    "load_profile",
    "tqdm_progress",
    *errors.__all__,
]
