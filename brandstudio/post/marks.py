"""Machine-readable AI marks: what the MP4 tags say about how the clip was made, per region.

Every clip is marked as AI-generated for machines, whatever the region: brandstudio's JSON in
the MP4 ``comment`` tag carries ``"ai_generated": true`` and the IPTC digital source type
``trainedAlgorithmicMedia``; for ``cn`` an ``AIGC`` tag holds the object GB 45438-2025 defines
(see :mod:`brandstudio.post.label` for the rules per region).

Example:
    >>> sorted(aigc_metadata(producer="Qinglan Tea Co.", produce_id="qinglan-tea-0a1b2c"))
    ['ContentProducer', 'ContentPropagator', 'Label', 'ProduceID', 'PropagateID', 'ReservedCode1']
"""

from __future__ import annotations

import hashlib
import json

from .label import LabelPlan

__all__ = ["DIGITAL_SOURCE_TYPE", "aigc_metadata", "machine_marks", "produce_id"]


#: IPTC digital source type of footage made by a trained generative model
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"



def produce_id(profile_id: str, fingerprint: str, *parts) -> str:
    """A content id that is the same for the same profile and request: ``<profile>-<24 hex>``.

    Example:
        >>> produce_id("qinglan-tea", "ab" * 32, "product-hero", 3)[:12]
        'qinglan-tea-'
    """
    key = json.dumps([fingerprint, *parts], sort_keys=True, default=str, ensure_ascii=False)
    return f"{profile_id}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"



def aigc_metadata(*, producer: str, produce_id: str) -> dict[str, str]:
    """GB 45438-2025's implicit label: the ``AIGC`` metadata object of a generated file."""
    return {
        "Label": "1",
        "ContentProducer": producer,
        "ProduceID": produce_id,
        "ReservedCode1": "",
        "ContentPropagator": "",
        "PropagateID": "",
    }



def machine_marks(spec, plan: LabelPlan, *, content_id: str) -> tuple[dict, dict[str, str]]:
    """The machine-readable marks: fields for brandstudio's ``comment`` JSON, and extra MP4 tags.

    Every region gets ``ai_generated``, ``digital_source_type`` and the visible-label rule in
    the comment; ``cn`` also gets the ``AIGC`` tag (JSON, UTF-8).
    """
    comment = {
        "ai_generated": True,
        "digital_source_type": DIGITAL_SOURCE_TYPE,
        "region": plan.region,
        "label_shown": plan.show if plan.text else "none",
        "content_id": content_id,
    }
    tags: dict[str, str] = {}
    if plan.region == "cn":
        producer = spec.label.producer or spec.brand.client or spec.brand.name
        tags["AIGC"] = json.dumps(aigc_metadata(producer=producer, produce_id=content_id), ensure_ascii=False)
    return comment, tags
