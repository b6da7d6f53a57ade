"""Keeping third-party import notices out of a user's output.

``import brandstudio`` and a render print nothing the user did not ask for: a notebook shows
the progress and the result. Some libraries brandstudio imports log notices at import time
that say nothing about the user's work: torchao (the ``quant`` extra) cannot load its CUDA
kernels into a CPU torch, torch warns about torchao's pytree registrations, diffusers then says
torchao's tensor types are unavailable, and transformers announces the PIL image processor it
uses because torchvision is (deliberately) not installed. :func:`quiet_import_notices` raises
those few loggers to ERROR, and only those the user has not configured (level still NOTSET), so
``logging.getLogger("torchao").setLevel(logging.INFO)`` before ``import brandstudio`` brings
them back.

Example:
    >>> import logging
    >>> quiet_import_notices()
    >>> logging.getLogger("torchao").level == logging.ERROR
    True
"""

from __future__ import annotations

import logging

__all__ = ["QUIET_LOGGERS", "quiet_import_notices"]

#: loggers whose import-time notices are noise in brandstudio's output (see the module docstring)
QUIET_LOGGERS = (
    "torchao",
    "torch.utils._pytree",
    "diffusers.quantizers.torchao.torchao_quantizer",
    "transformers.utils.import_utils",  # "CLIPImageProcessor requires torchvision": the PIL fallback is intended
)


def quiet_import_notices() -> None:
    """Raise :data:`QUIET_LOGGERS` to ERROR, each unless the user already set its level."""
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.ERROR)
