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
    '2f0382debb99'
    >>> from pydantic import BaseModel
    >>> class M(BaseModel):
    ...     fps: int
    >>> try:
    ...     M.model_validate({"fps": "fast"})
    ... except Exception as exc:
    ...     first_error(exc)[0]
    'fps'

Reading user files
------------------
A profile, template, campaign file, CSV brief, LUT, logo or reference image is *user input*:
it may be a FIFO, a folder, a symlink loop, unreadable, huge or not UTF-8. Every one is read
through :func:`read_user_bytes` / :func:`read_user_text` (or checked with
:func:`check_user_file` when a library must open it by path), which turn each of those cases
into the caller's :class:`~brandstudio.errors.BrandStudioError` (profile, file, field, fix):
never a traceback, never a hang (a FIFO is refused from ``stat`` before it is opened, and the
file is opened ``O_NONBLOCK``), never more than the limit read into memory.

Limits
------
Every parser of user input has limits, each a :class:`Limit` below. An error that hits one
names it and says how to raise it: set the environment variable to a larger value.

==================================  =================  =========================================
environment variable                default            what it bounds
==================================  =================  =========================================
``BRANDSTUDIO_MAX_TOML_BYTES``      1 MiB              size of brand.toml, a template, a campaign file
``BRANDSTUDIO_MAX_TOML_DEPTH``      32                 nesting of tables, arrays and dotted keys
``BRANDSTUDIO_MAX_CSV_BYTES``       64 MiB             size of a CSV brief
``BRANDSTUDIO_MAX_CSV_ROWS``        100000             rows of a CSV brief
``BRANDSTUDIO_MAX_CSV_CELL``        65536              characters in one CSV cell
``BRANDSTUDIO_MAX_IMAGE_BYTES``     64 MiB             size of a logo or reference image file
``BRANDSTUDIO_MAX_IMAGE_PIXELS``    67108864 (8192²)   pixels of a logo or reference image
``BRANDSTUDIO_MAX_LUT_BYTES``       128 MiB            size of a ``.cube`` LUT
``BRANDSTUDIO_MAX_LUT_SIZE``        129                ``LUT_3D_SIZE`` of a ``.cube`` LUT
``BRANDSTUDIO_MAX_LUT_1D_SIZE``     65536              ``LUT_1D_SIZE`` of a ``.cube`` LUT
``BRANDSTUDIO_MAX_TEMPLATE_SECONDS`` 2                 time to render one template
``BRANDSTUDIO_MAX_TEMPLATE_LOOPS``  10000              loop iterations (all loops, nested or not) of one render
``BRANDSTUDIO_MAX_TEMPLATE_OUTPUT`` 20000              characters a template produces (per text) and any value it builds
``BRANDSTUDIO_MAX_AUDIO_SECONDS``   600                audio decoded without a clip to fit (``audio.music.MAX_AUDIO``)
``BRANDSTUDIO_SAFETY_REGEX_TIMEOUT`` 0.25              seconds a look-around safety regex may take on one text (``textmatch.REGEX_SECONDS``)
==================================  =================  =========================================

    >>> MAX_TOML_DEPTH.value()
    32
    >>> print(MAX_TOML_DEPTH.fix())
    raise the limit if this is intended: export BRANDSTUDIO_MAX_TOML_DEPTH=64 (now 32)
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import tomllib
from pydantic import BaseModel, ValidationError

from .errors import BrandStudioError, EncodeError

__all__ = [
    "MAX_CSV_BYTES",
    "MAX_CSV_CELL",
    "MAX_CSV_ROWS",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_LUT_1D_SIZE",
    "MAX_LUT_BYTES",
    "MAX_LUT_SIZE",
    "MAX_TEMPLATE_LOOPS",
    "MAX_TEMPLATE_OUTPUT",
    "MAX_TEMPLATE_SECONDS",
    "MAX_TOML_BYTES",
    "MAX_TOML_DEPTH",
    "FieldProblem",
    "Limit",
    "brandstudio_home",
    "check_writable",
    "check_user_file",
    "decode_utf8",
    "first_error",
    "read_toml",
    "nearest_existing_folder",
    "read_toml_model",
    "removed_on_error",
    "read_user_bytes",
    "read_user_text",
    "sha256_file",
    "temp_path",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]

M = TypeVar("M", bound=BaseModel)


class FieldProblem(ValueError):
    """A model validator's problem with one field of the table it checks, with its fix.

    Raised inside a pydantic ``model_validator`` (pydantic reports it at the table: ``variables.discount``);
    :func:`read_toml_model` then names the field itself (``variables.discount.min``), its value and
    this fix rather than the file format's general one.
    """

    def __init__(self, field: str, message: str, *, fix: str, value: object = None) -> None:
        super().__init__(message)
        self.field, self.value, self.fix = field, value, fix


def first_error(exc: ValidationError) -> tuple[str, str, object]:
    """``(dotted location, message, offending input)`` of a validation error's first problem."""
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"])
    value = None if err["type"] == "missing" else err.get("input")
    return where, err["msg"].removeprefix("Value error, "), value


# -- limits ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """A bound on what a parser accepts from user input, raised by an environment variable.

    Example:
        >>> MAX_CSV_ROWS.env, MAX_CSV_ROWS.value()
        ('BRANDSTUDIO_MAX_CSV_ROWS', 100000)
    """

    env: str
    default: int | float
    unit: str  # "bytes", "rows", "characters", ...

    def value(self) -> int | float:
        """The limit in force: ``$<env>`` when set, else the default."""
        raw = os.environ.get(self.env, "").strip()
        if not raw:
            return self.default
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number <= 0:
            raise BrandStudioError(
                f"${self.env} must be a positive number, got {raw!r}",
                field=self.env,
                value=raw,
                fix=f"unset {self.env} (default {self.default}) or set it to a positive number",
            )
        return int(number) if isinstance(self.default, int) else number

    def fix(self) -> str:
        """How to raise the limit, for an error's ``fix``."""
        now = self.value()
        return f"raise the limit if this is intended: export {self.env}={_fmt(now * 2)} (now {_fmt(now)})"

    def exceeded(self, amount: object) -> str:
        """``"12 MB; the limit is 1048576 bytes (BRANDSTUDIO_MAX_TOML_BYTES)"``."""
        return f"{amount}; the limit is {_fmt(self.value())} {self.unit} ({self.env})"


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


MAX_TOML_BYTES = Limit("BRANDSTUDIO_MAX_TOML_BYTES", 1 << 20, "bytes")
MAX_TOML_DEPTH = Limit("BRANDSTUDIO_MAX_TOML_DEPTH", 32, "levels")
MAX_CSV_BYTES = Limit("BRANDSTUDIO_MAX_CSV_BYTES", 64 << 20, "bytes")
MAX_CSV_ROWS = Limit("BRANDSTUDIO_MAX_CSV_ROWS", 100_000, "rows")
MAX_CSV_CELL = Limit("BRANDSTUDIO_MAX_CSV_CELL", 65_536, "characters")
MAX_IMAGE_BYTES = Limit("BRANDSTUDIO_MAX_IMAGE_BYTES", 64 << 20, "bytes")
MAX_IMAGE_PIXELS = Limit("BRANDSTUDIO_MAX_IMAGE_PIXELS", 1 << 26, "pixels")
MAX_LUT_BYTES = Limit("BRANDSTUDIO_MAX_LUT_BYTES", 128 << 20, "bytes")
MAX_LUT_SIZE = Limit("BRANDSTUDIO_MAX_LUT_SIZE", 129, "points per axis")
MAX_LUT_1D_SIZE = Limit("BRANDSTUDIO_MAX_LUT_1D_SIZE", 65_536, "entries")
MAX_TEMPLATE_SECONDS = Limit("BRANDSTUDIO_MAX_TEMPLATE_SECONDS", 2.0, "seconds")
MAX_TEMPLATE_LOOPS = Limit("BRANDSTUDIO_MAX_TEMPLATE_LOOPS", 10_000, "loop iterations")
MAX_TEMPLATE_OUTPUT = Limit("BRANDSTUDIO_MAX_TEMPLATE_OUTPUT", 20_000, "characters")


# -- reading user files --------------------------------------------------------------------

#: what a path can be other than a regular file, from ``stat``
_NOT_FILES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def check_user_file(
    path: str | Path,
    *,
    error: type[BrandStudioError],
    what: str,
    limit: Limit | None = None,
    profile: str | None = None,
    field: str | None = None,
    file: str | None = None,
    missing_fix: str = "check the path",
) -> os.stat_result:
    """``stat`` a user file and refuse anything but a regular file within ``limit`` bytes.

    For files a library opens by path (a font, a LoRA); :func:`read_user_bytes` reads them.
    ``what`` names the file in messages ("the LUT", "brand.toml"); ``file`` is how the error
    names it (default: the path); ``error`` is the error class raised.

    Example:
        >>> from brandstudio.errors import ProfileError
        >>> try:
        ...     check_user_file("/tmp", error=ProfileError, what="brand.toml")
        ... except ProfileError as exc:
        ...     print(exc.message)
        brand.toml /tmp is a folder, not a file
    """
    name = os.fspath(path)
    ctx = {"profile": profile, "field": field, "file": file if file is not None else name}
    if "\x00" in name:
        raise error(
            f"{what}: the path {name!r} contains a null byte", value=name,
            fix="remove the NUL character (\\x00) from the path", **ctx,
        )  # fmt: skip
    try:
        st = os.stat(name)
    except OSError as exc:
        raise _open_error(exc, error, what, name, ctx, missing_fix) from None
    for test, kind in _NOT_FILES:
        if test(st.st_mode):
            fix = "name a file inside it, not the folder" if kind == "a folder" else "point it at a regular file"
            raise error(f"{what} {name} is {kind}, not a file", fix=fix, **ctx)
    if not os.access(name, os.R_OK):  # a reader would fail later, with its own exception
        raise _open_error(PermissionError(errno.EACCES, "permission denied"), error, what, name, ctx, missing_fix)
    if limit is not None and st.st_size > limit.value():
        raise error(f"{what} {name} is too large: {limit.exceeded(f'{st.st_size} bytes')}", fix=limit.fix(), **ctx)
    return st


def _open_error(
    exc: OSError, error: type[BrandStudioError], what: str, name: str, ctx: dict, missing_fix: str
) -> BrandStudioError:
    """The error for a path that cannot be opened, by its ``errno``."""
    if exc.errno == errno.ENOENT:
        return error(f"{what} not found: {name}", fix=missing_fix, **ctx)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return error(
            f"{what} {name} cannot be read: permission denied",
            fix=f"make it readable by this user (chmod u+r {name}, and u+x on its folders)", **ctx,
        )  # fmt: skip
    if exc.errno == errno.ELOOP:
        return error(
            f"{what} {name} is a symlink loop (the link leads back to itself)",
            fix="point the symlink at a real file (`ls -l` shows where each link leads)", **ctx,
        )  # fmt: skip
    if exc.errno == errno.ENOTDIR:
        return error(f"{what} {name}: a part of the path is a file, not a folder", fix=missing_fix, **ctx)
    if exc.errno == errno.ENAMETOOLONG:
        return error(f"{what}: the path is too long ({len(name)} characters)", fix="use a shorter path", **ctx)
    return error(f"{what} {name} cannot be opened: {exc.strerror or exc}", fix=missing_fix, **ctx)


def read_user_bytes(
    path: str | Path,
    *,
    limit: Limit,
    error: type[BrandStudioError],
    what: str,
    profile: str | None = None,
    field: str | None = None,
    file: str | None = None,
    missing_fix: str = "check the path",
) -> bytes:
    """The bytes of a user file, read safely: at most ``limit`` bytes, never blocking.

    A FIFO, socket, device or folder is refused from ``stat`` before it is opened, and the file
    is opened ``O_NONBLOCK`` (a FIFO swapped in after the check cannot block either) and checked
    again on its descriptor. Reads at most ``limit + 1`` bytes, so a file that grows while it is
    read is still refused. Every failure is ``error`` (see :func:`check_user_file`).

    Example:
        >>> import tempfile
        >>> from brandstudio.errors import CampaignError
        >>> p = write_text_atomic(os.path.join(tempfile.mkdtemp(), "a.csv"), "name\\nx\\n")
        >>> read_user_bytes(p, limit=MAX_CSV_BYTES, error=CampaignError, what="the CSV")
        b'name\\nx\\n'
    """
    name = os.fspath(path)
    ctx = {"profile": profile, "field": field, "file": file if file is not None else name}
    check_user_file(
        path, error=error, what=what, limit=limit, profile=profile, field=field, file=file,
        missing_fix=missing_fix,
    )  # fmt: skip
    max_bytes = int(limit.value())
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(name, flags)
    except OSError as exc:
        raise _open_error(exc, error, what, name, ctx, missing_fix) from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between the stat and the open
            raise error(f"{what} {name} is not a regular file", fix="point it at a regular file", **ctx)
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise _open_error(exc, error, what, name, ctx, missing_fix) from None
    if len(data) > max_bytes:
        raise error(f"{what} {name} is too large: {limit.exceeded(f'over {max_bytes} bytes')}", fix=limit.fix(), **ctx)
    return data


def decode_utf8(
    data: bytes, *, error: type[BrandStudioError], what: str, **ctx: Any
) -> str:
    """``data`` as UTF-8 text (a leading byte-order mark dropped); undecodable bytes are ``error``
    naming the problem, its byte offset and line.

    Example:
        >>> from brandstudio.errors import CampaignError
        >>> try:
        ...     decode_utf8(b"a,b\\ncaf\\xe9\\n", error=CampaignError, what="the CSV")
        ... except CampaignError as exc:
        ...     print(exc.message)
        the CSV is not UTF-8 text: invalid continuation byte 0xe9 at byte 7 (line 2)
    """
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        reason = exc.reason if exc.reason != "unexpected end of data" else "a character cut off at the end"
        raise error(
            f"{what} is not UTF-8 text: {reason} 0x{data[exc.start]:02x} at byte {exc.start} (line {line})",
            fix="save it as UTF-8 (an editor's \"Save as … UTF-8\"; Excel: \"CSV UTF-8\")", **ctx,
        ) from None  # fmt: skip


def read_user_text(
    path: str | Path,
    *,
    limit: Limit,
    error: type[BrandStudioError],
    what: str,
    profile: str | None = None,
    field: str | None = None,
    file: str | None = None,
    missing_fix: str = "check the path",
) -> str:
    """A user file as UTF-8 text: :func:`read_user_bytes`, then :func:`decode_utf8`."""
    data = read_user_bytes(
        path, limit=limit, error=error, what=what, profile=profile, field=field, file=file,
        missing_fix=missing_fix,
    )  # fmt: skip
    return decode_utf8(data, error=error, what=what, profile=profile, field=field,
                       file=file if file is not None else os.fspath(path))  # fmt: skip


# -- TOML ------------------------------------------------------------------------------------

#: the characters that change nesting (or start a string or comment) in TOML
_TOML_SIGNIFICANT = re.compile(r"[\n#\"'\[\]{}=,.]")


def toml_nesting_line(text: str, limit: int) -> int | None:
    """The line where ``text`` nests deeper than ``limit`` (brackets, braces and dotted keys),
    or ``None``: a linear scan that skips strings and comments, run before ``tomllib`` (which
    recurses once per level and would hit Python's recursion limit on deep input).

    Example:
        >>> toml_nesting_line("a = [[1], [2]]\\nb.c = 'x[[['", 3), toml_nesting_line("a = " + "[" * 9, 3)
        (None, 1)
    """
    depth = dots = 0
    line, i = 1, 0
    while (m := _TOML_SIGNIFICANT.search(text, i)) is not None:
        c, i = m.group(), m.end()
        if c == "\n":
            line, dots = line + 1, 0
        elif c == "#":
            i = text.find("\n", i)
            if i < 0:
                break
        elif c in "\"'":
            end = _toml_string_end(text, m.start())
            line += text.count("\n", i, end)
            i = end
        elif c in "[{":
            depth, dots = depth + 1, 0
        elif c in "]}":
            depth, dots = max(0, depth - 1), 0
        elif c in "=,":
            dots = 0
        else:  # "." in a dotted key (or a float: counted too, which errs on the safe side)
            dots += 1
        if depth + dots > limit:
            return line
    return None


def _toml_string_end(text: str, start: int) -> int:
    """The index after the TOML string starting at ``start`` (basic, literal, or multi-line)."""
    quote = text[start]
    if text.startswith(quote * 3, start):
        end, i = quote * 3, start + 3
    else:
        end, i = quote, start + 1
    while i < len(text):
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if text.startswith(end, i):
            i += len(end)
            while len(end) == 3 and i < len(text) and text[i] == quote:  # """a"""" ends with quotes
                i += 1
            return i
        if len(end) == 1 and text[i] == "\n":  # an unterminated string: tomllib reports it
            return i
        i += 1
    return i


def _check_toml_values(data: dict, error: type[BrandStudioError], what: str, ctx: dict) -> None:
    """Refuse null bytes in keys and values, and nesting deeper than the limit (iteratively:
    nothing here recurses)."""
    limit = MAX_TOML_DEPTH.value()
    stack: list[tuple[object, str, int]] = [(data, "", 1)]
    while stack:
        node, where, depth = stack.pop()
        if depth > limit:
            raise error(
                f"{what} nests too deeply at `{where}`: {MAX_TOML_DEPTH.exceeded(f'{depth} levels')}",
                field=where or None, fix=MAX_TOML_DEPTH.fix(), **ctx,
            )  # fmt: skip
        items = node.items() if isinstance(node, dict) else enumerate(node)  # type: ignore[union-attr]
        for key, value in items:
            here = f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else str(key))
            if (isinstance(key, str) and "\x00" in key) or (isinstance(value, str) and "\x00" in value):
                raise error(
                    f"{what} has a null byte (\\u0000) in `{here}`",
                    field=here, fix=f"remove the \\u0000 from `{here}`", **ctx,
                )  # fmt: skip
            if isinstance(value, (dict, list)):
                stack.append((value, here, depth + 1))


def read_toml(
    path: str | Path,
    error: type[BrandStudioError],
    *,
    what: str,
    profile: str | None = None,
    file: str | None = None,
    missing_fix: str = "check the path",
    syntax_fix: str = "fix the TOML syntax at the line and column given",
) -> dict:
    """A TOML user file as a dict, read with :func:`read_user_text` and every limit checked:
    file size, nesting depth (checked before parsing), null bytes in keys and values.

    Example:
        >>> import tempfile
        >>> from brandstudio.errors import TemplateError
        >>> p = write_text_atomic(os.path.join(tempfile.mkdtemp(), "t.toml"), 'a = "x\\\\u0000"')
        >>> try:
        ...     read_toml(p, TemplateError, what="the template")
        ... except TemplateError as exc:
        ...     print(exc.message, exc.field)
        the template has a null byte (\\u0000) in `a` a
    """
    shown = file if file is not None else os.fspath(path)
    ctx = {"profile": profile, "file": shown}
    text = read_user_text(
        path, limit=MAX_TOML_BYTES, error=error, what=what, profile=profile, file=file, missing_fix=missing_fix
    )
    depth = MAX_TOML_DEPTH.value()
    if (line := toml_nesting_line(text, depth)) is not None:
        raise error(
            f"{what} nests too deeply at line {line}: {MAX_TOML_DEPTH.exceeded(f'over {depth} levels')}",
            fix=MAX_TOML_DEPTH.fix(), **ctx,
        )  # fmt: skip
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} is not valid TOML: {exc}", fix=syntax_fix, **ctx) from None
    except RecursionError:  # the scan above should make this unreachable; never a traceback
        raise error(
            f"{what} nests too deeply: {MAX_TOML_DEPTH.exceeded('too many levels')}", fix=MAX_TOML_DEPTH.fix(), **ctx
        ) from None
    _check_toml_values(data, error, what, ctx)
    return data


def read_toml_model(
    path: Path, model: type[M], error: type[BrandStudioError], *, what: str, fix: str, kind: str = "file"
) -> M:
    """Parse ``path`` (:func:`read_toml`) and validate it as ``model``; raise ``error`` naming the
    file and field.

    ``what`` starts the message ("template 'x'", "the campaign file"), ``kind`` names the file
    when it is missing ("campaign file"); ``fix`` is the fix for a schema problem (a syntax
    problem's fix is always to correct the TOML at the position given).
    """
    if "\x00" not in str(path) and not os.path.lexists(path):
        raise error(f"no {kind} at {path}", file=str(path), fix="check the path")
    data = read_toml(
        path, error, what=what,
        syntax_fix="fix the TOML syntax at the line and column given (and save it as UTF-8)",
    )  # fmt: skip
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where, msg, value = first_error(exc)
        problem = exc.errors(include_url=False)[0].get("ctx", {}).get("error")
        if isinstance(problem, FieldProblem):  # a check across fields that knows the field and the fix
            where = f"{where}.{problem.field}" if where else problem.field
            value, fix = problem.value, problem.fix
        raise error(f"{what} is invalid: `{where}`: {msg}", file=str(path), field=where, value=value,
                    fix=fix) from None  # fmt: skip


def nearest_existing_folder(folder: str | Path) -> Path:
    """``folder``, or its closest ancestor that exists (where the folders of a new file will be made)."""
    folder = Path(os.path.abspath(folder))
    while not os.path.lexists(folder) and folder.parent != folder:
        folder = folder.parent
    return folder


def check_writable(path: str | Path, *, error: type[BrandStudioError], what: str, field: str | None = None,
                   profile: str | None = None) -> None:  # fmt: skip
    """Refuse, before any work, a file that could not be written at ``path``: a null byte in it,
    a file where one of its folders goes, a folder that cannot be written, a folder at ``path``
    itself. Creates nothing.

    Example:
        >>> from brandstudio.errors import RequestError
        >>> try:
        ...     check_writable("/etc/hostname/x.cube", error=RequestError, what="the LUT", field="output")
        ... except RequestError as exc:
        ...     print(exc.message)
        cannot write the LUT /etc/hostname/x.cube: /etc/hostname is a file, not a folder
    """
    text = os.fspath(path)
    ctx = {"profile": profile, "field": field, "value": text.replace("\0", "\\0")}

    def refuse(why: str, fix: str) -> BrandStudioError:
        return error(f"cannot write {what} {ctx['value']}: {why}", fix=fix, **ctx)

    if "\0" in text:
        raise refuse("the path contains a null byte", "remove the null byte (\\0) from the path")
    target = Path(text)
    folder = nearest_existing_folder(target.parent)
    if not folder.is_dir():
        raise refuse(f"{folder} is a file, not a folder", "choose a path inside an existing or new folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise refuse(f"the folder {folder} cannot be written (permission denied or a read-only file system)",
                     "choose a folder you can write to, or fix its permissions")  # fmt: skip
    if target.is_dir():
        raise refuse("it is an existing folder", "name a file, not a folder")


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


@contextlib.contextmanager
def removed_on_error(*paths: str | Path) -> Iterator[None]:
    """Remove ``paths`` (files not yet published: a staged MP4, its sidecars) if the block raises,
    so a failed or interrupted step leaves nothing half-made behind."""
    try:
        yield
    except BaseException:
        for path in paths:
            Path(path).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, data: Any, *, sort_keys: bool = True) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (see :func:`write_text_atomic`)."""
    return write_text_atomic(path, json.dumps(data, sort_keys=sort_keys, default=str, ensure_ascii=False))
