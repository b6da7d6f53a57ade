"""Where the subject of a frame is: for subject-aware reframing (:class:`brandstudio.post.reframe.Reframe`).

Finders, by name in :data:`SUBJECT_FINDERS`; each takes one ``(H, W, 3)`` uint8 frame and
returns the subject's centre ``(x, y)`` in pixels, or ``None`` when it finds nothing:

* ``"saliency"`` — frequency-tuned saliency (Achanta, Hemami, Estrada & Süsstrunk,
  "Frequency-tuned Salient Region Detection", CVPR 2009), in numpy/scipy: on a 96 px wide
  thumbnail, each pixel's saliency is the CIELAB distance between the image's mean colour
  and the pixel's colour after a small Gaussian blur (which removes noise and texture). The
  subject is the saliency-weighted centroid of the salient region (pixels above twice the
  mean saliency, the paper's adaptive threshold). It finds the region that stands out from
  the frame's overall colour: a product, a lit face, a logo. (Spectral residual saliency,
  which OpenCV's contrib ``cv2.saliency`` implements, was tried first: it rings badly on
  clean synthetic frames and the installed ``opencv-python-headless`` has no contrib.)
* ``"face"`` — faces found by NudeNet's detector (a YOLOv8n network whose classes include
  ``FACE_FEMALE`` / ``FACE_MALE``; its ONNX weights ship inside the ``nudenet`` package, so
  nothing is downloaded): the score- and area-weighted centre of the faces. OpenCV 5 no
  longer ships Haar cascades (``cv2.CascadeClassifier`` and ``cv2.data.haarcascades`` are
  gone) and its YuNet face detector needs a model file that no package ships. A frame
  without a face falls back to saliency, so the crop still follows the subject.

Example:
    >>> import numpy as np
    >>> from brandstudio.post.subject import saliency_centre
    >>> frame = np.full((90, 160, 3), 60, np.uint8)
    >>> frame[30:50, 120:140] = 250                      # a bright square right of centre
    >>> x, y = saliency_centre(frame)
    >>> 115 < x < 145 and 25 < y < 55
    True
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from PIL import Image

from brandstudio.errors import MissingDependency
from brandstudio.frames import srgb_to_lab

__all__ = ["SUBJECT_FINDERS", "face_boxes", "face_centre", "saliency_centre", "saliency_map"]

_THUMB = 96  # thumbnail width for the saliency map


def saliency_map(frame: np.ndarray, width: int = _THUMB) -> np.ndarray:
    """Frequency-tuned saliency of an ``(H, W, 3)`` uint8 frame at ``width`` px wide, in [0, 1]."""
    from scipy.ndimage import gaussian_filter


    h, w = frame.shape[:2]
    th = max(8, round(h * width / w))
    thumb = np.asarray(Image.fromarray(frame).resize((width, th), Image.Resampling.BOX))
    lab = srgb_to_lab(thumb).astype(np.float64)
    blurred = gaussian_filter(lab, sigma=(1.0, 1.0, 0))
    sal = np.linalg.norm(blurred - lab.reshape(-1, 3).mean(axis=0), axis=-1)
    top = sal.max()
    return sal / top if top > 0 else sal


def saliency_centre(frame: np.ndarray) -> tuple[float, float] | None:
    """The saliency-weighted centroid of the salient region, in frame pixels (``None`` for a flat frame)."""
    sal = saliency_map(frame)
    if not np.isfinite(sal).all() or sal.max() <= 0 or np.ptp(sal) < 1e-6:
        return None
    weights = np.where(sal > 2 * sal.mean(), sal, 0.0)
    if weights.sum() <= 0:
        weights = sal
    ys, xs = np.mgrid[0 : sal.shape[0], 0 : sal.shape[1]]
    total = weights.sum()
    h, w = frame.shape[:2]
    cx = (float((weights * xs).sum() / total) + 0.5) * w / sal.shape[1]
    cy = (float((weights * ys).sum() / total) + 0.5) * h / sal.shape[0]
    return cx, cy


_FACE_CLASSES = ("FACE_FEMALE", "FACE_MALE")


@functools.lru_cache(maxsize=1)
def _face_detector():
    try:
        from nudenet import NudeDetector
    except ImportError:
        raise MissingDependency(
            'reframe = "face" needs the face detector from the nudenet package',
            field="output.reframe",
            value="face",
            fix='pip install "nudenet>=3.4,<4" (a brandstudio dependency), or use reframe = "saliency"',
        ) from None
    return NudeDetector()


def face_boxes(frame: np.ndarray, min_score: float = 0.3) -> list[tuple[float, float, float, float, float]]:
    """Faces in an ``(H, W, 3)`` uint8 RGB frame: ``(x, y, w, h, score)`` in frame pixels."""
    bgr = np.ascontiguousarray(frame[..., ::-1])
    found = _face_detector().detect(bgr)
    return [
        (*map(float, d["box"]), float(d["score"]))
        for d in found
        if d["class"] in _FACE_CLASSES and d["score"] >= min_score and d["box"][2] > 0 and d["box"][3] > 0
    ]


def face_centre(frame: np.ndarray) -> tuple[float, float] | None:
    """The score- and area-weighted centre of the faces; saliency when there is none."""
    boxes = face_boxes(frame)
    if not boxes:
        return saliency_centre(frame)
    weights = np.array([s * w * h for _, _, w, h, s in boxes])
    cx = np.array([x + w / 2 for x, _, w, _, _ in boxes])
    cy = np.array([y + h / 2 for _, y, _, h, _ in boxes])
    return float((weights * cx).sum() / weights.sum()), float((weights * cy).sum() / weights.sum())


#: subject finders by name: frame -> (x, y) or None
SUBJECT_FINDERS: dict[str, Callable[[np.ndarray], tuple[float, float] | None]] = {
    "saliency": saliency_centre,
    "face": face_centre,
}
