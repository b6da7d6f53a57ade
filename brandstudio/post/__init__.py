"""The post stage: what makes generated footage the brand's delivered clip.

Each effect is a small frozen dataclass with ``apply(frames) -> frames``
(:class:`~brandstudio.post.effect.Effect`), one per module:

==================  =========================================================================
effect              module
==================  =========================================================================
``ColourMatch``     :mod:`.match` — colour transfer to a reference still or frame 0
``TakeMatch``       :mod:`.take_match` — a long take's segments pulled back to the first one's colour
``Reframe``         :mod:`.reframe` — crop to the aspect ratio (centre, saliency, faces)
``Grade``           :mod:`.grade` — the brand's 3D LUT (fast kernels; :mod:`.grade_torch` on GPU)
``Upscale``         :mod:`.upscale` — to the delivery size (Lanczos, bicubic, Real-ESRGAN :mod:`.sr`)
``Captions``        :mod:`.captions` — burned-in captions in the brand font (sidecars: :mod:`.subtitles`)
``Logo``            :mod:`.logo` — the brand logo in a corner of the safe area
``Label``           :mod:`.label` — the visible AI-content notice (``RegionLabel``: per region)
==================  =========================================================================

The stage's front door is :func:`plan` (a :class:`~brandstudio.post.stream.PostChain` that the
encoder streams frames through), with :func:`check` before any work and :func:`with_label` last.

Example:
    >>> import numpy as np
    >>> from brandstudio.post import PostChain, Reframe, Upscale
    >>> chain = PostChain((Reframe("1:1"), Upscale(8, 8)))
    >>> chain.apply(np.zeros((2, 4, 6, 3), np.uint8)).shape
    (2, 8, 8, 3)
"""

from .captions import Captions, CaptionStyle
from .effect import Effect
from .grade import LUT, Grade, read_lut
from .label import Label, LabelPlan, RegionLabel, label_plan, label_text
from .logo import Logo, load_logo
from .marks import machine_marks, produce_id
from .match import ColourMatch, load_reference
from .plan import bake_ahead, check, clip_label, delivery_size, grade_of, plan, with_label
from .reframe import Reframe
from .stream import PostChain, run_stream
from .subtitles import Cue, write_srt, write_vtt
from .take_match import TakeMatch
from .upscale import Upscale

__all__ = [
    "LUT",
    "CaptionStyle",
    "Captions",
    "ColourMatch",
    "Cue",
    "Effect",
    "Grade",
    "Label",
    "LabelPlan",
    "Logo",
    "PostChain",
    "Reframe",
    "RegionLabel",
    "TakeMatch",
    "Upscale",
    "bake_ahead",
    "check",
    "clip_label",
    "delivery_size",
    "grade_of",
    "label_plan",
    "label_text",
    "load_logo",
    "load_reference",
    "machine_marks",
    "plan",
    "produce_id",
    "read_lut",
    "run_stream",
    "with_label",
    "write_srt",
    "write_vtt",
]
