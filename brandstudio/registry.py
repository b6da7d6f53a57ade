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

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """A name → value mapping that stages fill at import and everything else reads.

    ``what`` names an entry in messages ("upscaler"); ``where`` says where the names are used
    (``"upscale.method"``) for the docs.
    """

    def __init__(self, what: str, where: str = "") -> None:
        self.what = what
        self.where = where
        self._entries: dict[str, T] = {}

    def register(self, name: str, value: T | None = None) -> Any:
        """Add ``value`` under ``name``; without ``value``, a decorator that registers what it wraps."""
        if value is None:

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

    def validator(self) -> Callable[[str], str]:
        """:meth:`check` for pydantic's ``AfterValidator`` (looked up when a value is validated,
        so it sees every registration made by then)."""
        return self.check

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._entries)})"
