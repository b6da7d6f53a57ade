"""Encoding: the delivered MP4 (H.264 + AAC), written atomically (:mod:`.mp4`), and the stage's
front door :func:`write` that streams a post chain into it (:mod:`.clip`); the partial files of
killed runs, told apart from a live run's and removed (:mod:`.partials`).

Example:
    >>> import numpy as np, tempfile, os
    >>> from brandstudio.encode import write_mp4
    >>> from brandstudio.media import probe
    >>> out = write_mp4(np.zeros((8, 32, 48, 3), np.uint8), 8, os.path.join(tempfile.mkdtemp(), "a.mp4"))
    >>> probe(out)["video_codec"]
    'h264'
"""

from .clip import check, clip_metadata, default_output, sidecars, write
from .mp4 import Mp4Writer, write_mp4
from .partials import remove_partials
from .paths import check_output

__all__ = [
    "Mp4Writer",
    "check",
    "check_output",
    "clip_metadata",
    "default_output",
    "remove_partials",
    "sidecars",
    "write",
    "write_mp4",
]
