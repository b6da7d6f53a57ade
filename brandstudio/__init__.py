"""brandstudio: brand-consistent marketing video from a brand profile and a brief.

Example:
    >>> from brandstudio import BrandStudio
    >>> studio = BrandStudio("brand_profiles/aurora-coffee")                          # doctest: +SKIP
    >>> clip = studio.render("product-hero", product="Night Roast", aspect="9:16")    # doctest: +SKIP
    >>> clip.path, clip.duration, clip.size                                           # doctest: +SKIP
"""

from __future__ import annotations

from .errors import (
    AssetError,
    BrandStudioError,
    EncodeError,
    GenerationError,
    LoRAError,
    MissingDependency,
    PostError,
    ProfileError,
    ProfileNotFound,
    RequestError,
    SafetyViolation,
    TemplateError,
)
from .profile.loader import BrandProfile, load_profile
from .request import RenderRequest, RenderResult
from .studio import BrandStudio

__version__ = "0.1.0"

__all__ = [
    "AssetError",
    "BrandProfile",
    "BrandStudio",
    "BrandStudioError",
    "EncodeError",
    "GenerationError",
    "LoRAError",
    "MissingDependency",
    "PostError",
    "ProfileError",
    "ProfileNotFound",
    "RenderRequest",
    "RenderResult",
    "RequestError",
    "SafetyViolation",
    "TemplateError",
    "__version__",
    "load_profile",
]
