"""Read a TOML file into a pydantic model, turning every failure into one clear BrandStudioError.

Shared by prompt templates and campaign files (the profile loader reports *all* schema
problems at once, so it has its own richer message).

Example:
    >>> from pydantic import BaseModel
    >>> from brandstudio._toml import first_error
    >>> class M(BaseModel):
    ...     fps: int
    >>> try:
    ...     M.model_validate({"fps": "fast"})
    ... except Exception as exc:
    ...     first_error(exc)[0]
    'fps'
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import tomllib
from pydantic import BaseModel, ValidationError

from .errors import BrandStudioError

M = TypeVar("M", bound=BaseModel)


def first_error(exc: ValidationError) -> tuple[str, str, object]:
    """``(dotted location, message, offending input)`` of a validation error's first problem."""
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"])
    value = None if err["type"] == "missing" else err.get("input")
    return where, err["msg"].removeprefix("Value error, "), value


def read_toml_model(
    path: Path, model: type[M], error: type[BrandStudioError], *, what: str, fix: str, kind: str = "file"
) -> M:
    """Parse ``path`` and validate it as ``model``; raise ``error`` naming the file and field.

    ``what`` starts the message ("template 'x'", "the campaign file"), ``kind`` names the file
    when it is missing ("campaign file"); ``fix`` is the fix for a schema problem (a syntax problem's fix is always to correct the TOML at the position given).
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"no {kind} at {path}", file=str(path), fix="check the path") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what} is not valid TOML: {exc}", file=str(path),
                    fix="fix the TOML syntax at the line and column given (and save it as UTF-8)") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where, msg, value = first_error(exc)
        raise error(f"{what} is invalid: `{where}`: {msg}", file=str(path), field=where, value=value,
                    fix=fix) from None
