"""The ``brandstudio`` command line (Typer).

::

    brandstudio render brand_profiles/aurora-coffee product-hero --var product="Night Roast" --aspect 9:16
    brandstudio profile validate brand_profiles/aurora-coffee
    brandstudio profile show brand_profiles/qinglan-tea
    brandstudio profile schema > brand.schema.json
    brandstudio templates list --profile brand_profiles/aurora-coffee
    brandstudio qc clip.mp4 --profile brand_profiles/aurora-coffee [--json] [--html report.html]
    brandstudio verify clip.mp4 [--trust roots.pem] [--json]     # C2PA content credentials
    brandstudio campaign plan notebooks/campaigns/spring.toml
    brandstudio campaign run notebooks/campaigns/spring.toml [--quiet]
    brandstudio cache prewarm brand_profiles/aurora-coffee
    brandstudio cache ls | stats | prune --max-size 2GB   [--cache DIR-or-URL]
    brandstudio profile new clients/acme --name "Acme" --logo logo.png --references stills/
    brandstudio lut fit brand_profiles/aurora-coffee --pairs before/ after/ --apply
    brandstudio lora train brand_profiles/aurora-coffee --steps 300 --lr 1e-3 --add

Errors print as one clear message (what, where, fix) with exit status 2, never a traceback.
"""

from __future__ import annotations

from ..logs import QUIET_LOGGERS
from . import cache, campaigns, export, loras, luts, profiles, render, serve  # noqa: F401 - each registers its commands on `app`
from .app import app

__all__ = ["QUIET_LOGGERS", "app", "main"]


def main() -> None:  # pragma: no cover - entry point
    app()
