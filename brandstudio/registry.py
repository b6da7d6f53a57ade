"""String-keyed registries, colour-science style: a method is chosen by name, and the name is
checked against the registry wherever it is written (brand.toml, a CLI option, an argument).

A stage declares what it offers (``UPSCALERS.register("lanczos", fn)``); the profile schema
validates names against the registry rather than retyping them as ``Literal`` lists, so a new
method is one registration, and a typo gets the list of valid names.

Example:
    >>> COLOURS = Registry("colour", "render.colour")
    >>> COLOURS.register("red", (255, 0, 0))
    (255, 0, 0)
    >>> COLOURS["red"], list(COLOURS)
    ((255, 0, 0), ['red'])
    >>> COLOURS.check("blue")
    Traceback (most recent call last):
    ...
    ValueError: unknown colour 'blue'; use one of: red
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, Field

__all__ = ["Registry"]

T = TypeVar("T")
_DECORATE = object()  # register(name) used as a decorator


class Registry(Mapping[str, T], Generic[T]):
    """A name → value mapping that stages fill at import and everything else reads.

    ``what`` names an entry in messages ("upscaler"); ``where`` says where the names are used
    (``"upscale.method"``) for the docs.
    """

    def __init__(self, what: str, where: str = "") -> None:
        self.what = what
        self.where = where
        self._entries: dict[str, T] = {}

    def register(self, name: str, value: Any = _DECORATE) -> Any:
        """Add ``value`` under ``name`` (``None`` is a value: a name that selects nothing, like
        ``match = "off"``); without ``value``, a decorator that registers what it wraps."""
        if value is _DECORATE:

            def decorate(obj: T) -> T:
                self._entries[name] = obj
                return obj

            return decorate
        self._entries[name] = value
        return value

    def check(self, name: str) -> str:
        """``name`` if it is registered, else a ValueError that lists the valid names."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.what} {name!r}; use one of: {', '.join(self._entries)}")
        return name

    def field_type(self) -> Any:
        """The annotation of a pydantic field whose value must be a registered name: a ``str``
        checked when validated (so every stage has registered by then), listed as an ``enum``
        in the JSON Schema. ``method: UPSCALERS.field_type() = "lanczos"``."""
        return Annotated[
            str,
            AfterValidator(self.check),
            Field(json_schema_extra=lambda schema: schema.update(enum=list(self))),
        ]

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._entries)})"


# -- the registries brand.toml names are checked against (filled by the stages that implement them)

#: ``[upscale] method``: name → a resize function factory (brandstudio.post.upscale)
UPSCALE_METHODS: Registry = Registry("upscale method", "upscale.method")
#: ``[output] interpolation``: name → an interpolator factory (brandstudio.post.interpolate)
INTERPOLATION_METHODS: Registry = Registry("interpolation method", "output.interpolation")
#: ``[colour] match``: name → a colour-transfer method (brandstudio.post.match)
MATCH_METHODS: Registry = Registry("colour match method", "colour.match")
#: ``[colour] interpolation``: name → a 3D LUT interpolation kernel (brandstudio.post.grade)
LUT_INTERPOLATIONS: Registry = Registry("LUT interpolation", "colour.interpolation")
#: ``[output] reframe``: name → how the crop window is placed (brandstudio.post.reframe)
REFRAME_MODES: Registry = Registry("reframe mode", "output.reframe")
#: ``[safety] nsfw_labels``: the NSFW detector's classes (brandstudio.safety.frames)
NSFW_CLASSES: Registry = Registry("detector class", "safety.nsfw_labels")
#: ``[model] preset``: name → a speed preset (brandstudio.generation.presets)
SPEED_PRESETS: Registry = Registry("speed preset", "model.preset")
#: ``[model] memory``: name → a memory plan (brandstudio.generation.memory)
MEMORY_PLANS: Registry = Registry("memory plan", "model.memory")
#: ``[model] attention``: attention kernel name → diffusers backend (brandstudio.generation.attention)
ATTENTION_KERNELS: Registry = Registry("attention kernel", "model.attention")
#: ``[model] quantization``: how the experts' weights are stored (brandstudio.generation.quantize)
QUANTIZATION_KINDS: Registry = Registry("quantization", "model.quantization")
#: ``[brand] region``: labelling rules → the visible label's texts per language (brandstudio.post.label)
LABEL_REGIONS: Registry = Registry("labelling region", "brand.region")
#: ``[provenance] alg``: C2PA signing algorithms (brandstudio.provenance)
SIGNING_ALGORITHMS: Registry = Registry("signing algorithm", "provenance.alg")
