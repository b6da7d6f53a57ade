"""Brand profiles: ``brand.toml`` validated (:mod:`.schema`), its assets resolved inside the
profile, opened and hashed (:mod:`.loader`, with the checks stages register in :mod:`.assets`).

The profile sits below every stage: it imports none of them.

Example:
    >>> from brandstudio.profile import load_profile
    >>> profile = load_profile("brand_profiles/aurora-coffee")    # doctest: +SKIP
    >>> profile.spec.output.aspects                                # doctest: +SKIP
    ('9:16', '16:9', '1:1')
"""

from .assets import ASSET_CHECKS
from .loader import PROFILE_FILE, Asset, BrandProfile, load_profile
from .schema import ASPECT_RATIOS, BrandProfileSpec, parse_aspect

__all__ = [
    "ASPECT_RATIOS",
    "ASSET_CHECKS",
    "PROFILE_FILE",
    "Asset",
    "BrandProfile",
    "BrandProfileSpec",
    "load_profile",
    "parse_aspect",
]
