"""Where a clip may be written, checked before any work.

A render's files (the MP4, its ``.srt``/``.vtt`` captions, its ``.json`` record, its QC report)
all land in the clip's folder, under the clip's stem, plus hidden temp files a few dozen bytes
longer. :func:`check_output` refuses, before anything is generated, every output path that
would only fail at the end, after the expensive part: a null byte, a folder that is a file, a
folder that cannot be written, a name too long for the file system, a folder where one of the
files goes, and a clip inside a brand profile directory (versioned client data that a render
must never change).

Example:
    >>> import tempfile, pathlib
    >>> check_output(pathlib.Path(tempfile.mkdtemp()) / "clip.mp4")          # fine: returns None
    >>> try:
    ...     check_output(pathlib.Path(tempfile.mkdtemp()) / ("x" * 300 + ".mp4"))
    ... except RequestError as exc:
    ...     print(exc.message.split(": ", 1)[1])
    its name is 304 bytes long; the file system allows 255 per name and the render adds up to 42 for its sidecars and temp files
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import RequestError
from ..files import check_writable, nearest_existing_folder

__all__ = ["OUTPUT_SUFFIXES", "TEMP_NAME_BYTES", "check_output", "profile_dir_of"]

#: what a render writes beside ``<stem>.mp4`` (the clip itself included)
OUTPUT_SUFFIXES = (".mp4", ".srt", ".vtt", ".json", ".qc.json", ".qc.html")
#: the most bytes a hidden temp name adds to the clip's stem: the encoder's temp of the
#: unsigned staging copy, ``..<stem>.unsigned.<12 hex>.XXXXXXXX.part.mp4``
TEMP_NAME_BYTES = len("..") + len(".unsigned.") + 12 + len(".XXXXXXXX") + len(".part.mp4")
_NAME_MAX = 255  # when the file system does not say (os.pathconf): ext4, XFS, APFS, NTFS
_PATH_MAX = 4096


def check_output(out: Path, profile=None) -> None:
    """Raise :class:`~brandstudio.errors.RequestError` (field ``output``) when a clip cannot be
    written at ``out`` with its sidecars; ``profile`` (a loaded profile) names the error and its
    directory is refused too. Creates nothing."""
    pid = getattr(profile, "id", None)

    def refuse(why: str, fix: str) -> RequestError:
        return RequestError(f"cannot write the clip {_short(out)}: {why}", profile=pid, field="output",
                            value=_short(out), fix=fix)  # fmt: skip

    text = str(out)
    if "\0" in text:
        raise refuse("the path contains a null byte", "remove the null byte (\\0) from the output path")
    folder = nearest_existing_folder(out.parent)
    limit = _name_max(folder)
    stem_bytes = len(out.stem.encode("utf-8", "surrogateescape"))
    if stem_bytes + len(".qc.html") > limit or stem_bytes + TEMP_NAME_BYTES > limit:
        raise refuse(
            f"its name is {len(out.name.encode('utf-8', 'surrogateescape'))} bytes long; the file system allows "
            f"{limit} per name and the render adds up to {TEMP_NAME_BYTES} for its sidecars and temp files",
            f"use a file name of at most {limit - TEMP_NAME_BYTES} bytes (a CJK character is 3)",
        )
    if len(os.fsencode(os.path.abspath(text))) + TEMP_NAME_BYTES > _PATH_MAX:
        raise refuse(f"the path is longer than the system's {_PATH_MAX} bytes", "choose a shorter output path")
    home = profile_dir_of(out, profile)
    if home is not None:
        raise refuse(
            f"it is inside the brand profile directory {home}, which holds versioned client data "
            "that a render must never change",
            "choose an output folder outside the profile directory (e.g. renders/)",
        )
    # a file where a folder goes, an unwritable folder, a folder at the clip's own path
    check_writable(out, error=RequestError, what="the clip", field="output", profile=pid)
    for f in (out.with_name(out.stem + s) for s in OUTPUT_SUFFIXES):
        if f.is_dir():
            raise refuse(f"{f} is an existing folder, where the render writes a file",
                         "remove or rename that folder, or choose another output name")  # fmt: skip


def profile_dir_of(out: Path, profile=None) -> Path | None:
    """The brand profile directory ``out`` would be written inside (symlinks resolved): the
    ``profile``'s own, or any folder above ``out`` that holds a ``brand.toml``; else None."""
    try:
        target = Path(os.path.realpath(out))
    except (OSError, ValueError):
        return None
    root = getattr(profile, "root", None)
    if root is not None:
        home = Path(os.path.realpath(root))
        if target.is_relative_to(home):
            return home
    for folder in target.parents:
        try:
            if (folder / "brand.toml").is_file():
                return folder
        except OSError:
            continue
    return None


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX")) if folder.is_dir() else _NAME_MAX
    except (OSError, ValueError, AttributeError):
        return _NAME_MAX


def _short(out: Path) -> str:
    """The path for a message: a very long name shortened in the middle."""
    text = str(out).replace("\0", "\\0")
    return text if len(text) <= 160 else f"{text[:70]}...{text[-70:]}"
