"""Files, written safely: atomic writes, hashing, the cache root, and TOML read into a model.

Every output of brandstudio (clips' sidecars, records, manifests, caches) is written through
:func:`write_text_atomic` / :func:`write_json_atomic`: a temporary file in the same folder,
fsynced, then renamed into place, so a reader sees the old file or the new one, never half of
one. :func:`sha256_file` is the one file hash (asset fingerprints, campaign outputs).

Example:
    >>> import os, tempfile
    >>> path = write_json_atomic(os.path.join(tempfile.mkdtemp(), "a.json"), {"fps": 24})
    >>> path.read_text()
    '{"fps": 24}'
    >>> sha256_file(path)[:12]
    'e1d8e6d1b7ff'
    >>> from pydantic import BaseModel
    >>> class M(BaseModel):
    ...     fps: int
    >>> try:
    ...     M.model_validate({"fps": "fast"})
    ... except Exception as exc:
    ...     first_error(exc)[0]
    'fps'
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import tomllib
from pydantic import BaseModel, ValidationError

from .errors import BrandStudioError, EncodeError

__all__ = [
    "brandstudio_home",
    "first_error",
    "read_toml_model",
    "sha256_file",
    "temp_path",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]

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


def brandstudio_home() -> Path:
    """The cache root: ``$BRANDSTUDIO_HOME``, else ``~/.cache/brandstudio``."""
    home = os.environ.get("BRANDSTUDIO_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "brandstudio"


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def temp_path(path: Path, suffix: str) -> Path:
    """A new empty hidden file beside ``path`` (``.<stem>.XXXX<suffix>``), for a write that is
    renamed into place when complete. It gets a delivered file's usual permissions."""
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    # mkstemp makes 0600; a delivered file gets the usual permissions (0666 less the umask)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (temp file in the same directory + ``os.replace``).

    Example:
        >>> import tempfile, os
        >>> p = write_text_atomic(os.path.join(tempfile.mkdtemp(), "a.srt"), "hi\\n")
        >>> p.read_text()
        'hi\\n'
    """
    path = Path(path)
    if path.is_dir():
        raise EncodeError(
            f"cannot write {path.name}: it is an existing folder", file=str(path), fix="name a file, not a folder"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, ".part" + path.suffix)
    try:
        with open(tmp, "w", encoding=encoding, newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path: str | Path, data: bytes | memoryview | Iterable[bytes | memoryview]) -> Path:
    """Write ``data`` (bytes, or an iterable of blocks written in order) to ``path`` atomically:
    a hidden temporary file in the same folder, renamed into place when complete; removed on
    any failure, so ``path`` is the whole new file or untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, ".tmp")
    try:
        with open(tmp, "wb") as fh:
            for block in [data] if isinstance(data, (bytes, bytearray, memoryview)) else data:
                fh.write(block)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, data: Any, *, sort_keys: bool = True) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (see :func:`write_text_atomic`)."""
    return write_text_atomic(path, json.dumps(data, sort_keys=sort_keys, default=str, ensure_ascii=False))
