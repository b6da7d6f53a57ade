"""Quieting diffusers and transformers: their 'experimental feature' warnings and progress bars.

brandstudio reports progress itself (:mod:`brandstudio.progress`), so the libraries' own bars
and notices about features it uses on purpose would only be noise in a notebook or a campaign log.

Example:
    >>> with quiet_diffusers():                         # doctest: +SKIP
    ...     expert.enable_cache(config)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["quiet_diffusers", "quiet_progress"]


@contextlib.contextmanager
def quiet_diffusers(level: int = logging.ERROR) -> Iterator[None]:
    """Silence diffusers' 'experimental feature' warnings for the duration."""
    from diffusers.utils import logging as dlog  # diffusers imports torch

    old = dlog.get_verbosity()
    dlog.set_verbosity(level)
    try:
        yield
    finally:
        dlog.set_verbosity(old)


@contextlib.contextmanager
def quiet_progress(quiet: bool = True) -> Iterator[None]:
    """Hide diffusers'/transformers' progress bars (local loads and saves; downloads keep theirs)."""
    if not quiet:
        yield
        return
    # both import torch
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    was_d, was_t = dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        if was_d:
            dlog.enable_progress_bar()
        if was_t:
            tlog.enable_progress_bar()
