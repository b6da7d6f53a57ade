"""The brandstudio error hierarchy.

Every error a user can cause is a :class:`BrandStudioError`. Its message says what is
wrong, *where* (profile, file, field, value) and *how to fix it*; the CLI prints it
without a traceback and exits with status 2.

::

    BrandStudioError
    ├── ProfileError            brand.toml or one of its assets is wrong
    │   ├── ProfileNotFound     the profile directory or brand.toml is missing
    │   └── AssetError          a LUT, font, logo, music track or LoRA is missing,
    │                           corrupt, unsafe (pickle) or outside the profile
    ├── TemplateError           unknown template, undeclared/undefined variable,
    │                           wrong variable type, sandbox violation
    ├── RequestError            a render argument is invalid (aspect ratio, seed, ...)
    ├── SafetyViolation         a safety rule blocked the prompt or a caption
    ├── GenerationError         the model could not be loaded or run
    │   └── LoRAError           an adapter does not fit the model it is loaded into
    ├── PostError               a post-stage effect failed (grade, captions, music, ...)
    ├── EncodeError             ffmpeg could not write the MP4
    ├── ProvenanceError         C2PA signing is required but not configured, or failed
    ├── CampaignError           a campaign file, its CSV or its run is wrong
    ├── QCError                 a clip could not be read or measured for the QC report
    ├── AppError                the review app: its database, a job on its queue, a user's rights
    │   ├── AccessDenied        the user's role on the brand does not allow the action
    │   └── LeaseLost           a worker reports on a job it no longer holds (lease expired, requeued)
    └── MissingDependency       an optional extra is not installed

Example:
    >>> from brandstudio.errors import ProfileError
    >>> err = ProfileError("`strength` must be between 0 and 1, got 1.5",
    ...                    profile="aurora-coffee", file="brand.toml",
    ...                    field="colour.strength", fix="set colour.strength to a value in [0, 1]")
    >>> print(err)
    `strength` must be between 0 and 1, got 1.5
      profile: aurora-coffee
      file:    brand.toml
      field:   colour.strength
      fix:     set colour.strength to a value in [0, 1]
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "AccessDenied",
    "AppError",
    "AssetError",
    "BrandStudioError",
    "CampaignError",
    "EncodeError",
    "GenerationError",
    "LeaseLost",
    "LoRAError",
    "MissingDependency",
    "PostError",
    "ProfileError",
    "ProfileNotFound",
    "ProvenanceError",
    "QCError",
    "RequestError",
    "SafetyViolation",
    "TemplateError",
    "TrainingError",
    "TrainingStopped",
]


class BrandStudioError(Exception):
    """Base class: a message plus where the problem is and how to fix it."""

    def __init__(
        self,
        message: str,
        *,
        profile: str | None = None,
        file: str | None = None,
        field: str | None = None,
        value: object = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.profile = profile
        self.file = file
        self.field = field
        self.value = value
        self.fix = fix

    def __str__(self) -> str:
        lines = [self.message]
        for label, val in (
            ("profile", self.profile),
            ("file", self.file),
            ("field", self.field),
            ("fix", self.fix),
        ):
            if val is not None:
                lines.append(f"  {label + ':':<8} {val}")
        return "\n".join(lines)

    def __reduce__(self):
        # picklable with every subclass's keyword-only fields (errors cross process boundaries:
        # Ray workers, multiprocessing), which Exception's default reduce would drop
        return _rebuild, (type(self), self.message, dict(self.__dict__))


def _rebuild(cls: type, message: str, state: dict) -> BrandStudioError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ProfileError(BrandStudioError):
    """brand.toml is unreadable or invalid."""


class ProfileNotFound(ProfileError):
    """The profile directory or its brand.toml does not exist."""


class AssetError(ProfileError):
    """An asset named by the profile is missing, corrupt, unsafe or outside the profile."""


class TemplateError(BrandStudioError):
    """A prompt template is unknown, invalid, or was given bad variables."""


class RequestError(BrandStudioError):
    """A render argument is invalid."""


class SafetyViolation(BrandStudioError):
    """A safety rule with action ``block`` matched the prompt or a caption.

    Attributes:
        rule_id: the id of the rule that matched.
        matched: the text that matched, as written by the user.
        verdicts: every verdict of the check (blocking and warning).
    """

    def __init__(self, message: str, *, rule_id: str, matched: str, verdicts=(), **kw) -> None:
        super().__init__(message, **kw)
        self.rule_id = rule_id
        self.matched = matched
        self.verdicts = tuple(verdicts)


class GenerationError(BrandStudioError):
    """The video model could not be loaded or run."""


class LoRAError(GenerationError):
    """A LoRA adapter does not fit the model (another base model, bad keys or shapes)."""


class PostError(BrandStudioError):
    """A post-stage effect failed."""


class EncodeError(BrandStudioError):
    """Writing the MP4 failed."""


class ProvenanceError(BrandStudioError):
    """C2PA content credentials could not be made: no signer where one is required, a bad
    certificate or key, or the signing itself failed (brandstudio.provenance)."""


class QCError(BrandStudioError):
    """A clip could not be read or measured for the QC report (missing, not a video, empty)."""


class CampaignError(BrandStudioError):
    """A campaign file (or its CSV) is invalid, or the campaign cannot run (locked, backend)."""


class TrainingError(BrandStudioError):
    """LoRA training cannot start or go on: its data folder, captions or settings are invalid,
    or a previous run's checkpoints belong to other settings."""


class TrainingStopped(TrainingError):
    """Training was stopped (Ctrl-C) after writing a checkpoint; the same call resumes it."""


class AppError(BrandStudioError):
    """The review app (``brandstudio serve``, :mod:`brandstudio.app`) cannot do what was asked: its
    database is not at the schema this version needs, a job or user is not what it should be."""


class AccessDenied(AppError):
    """The user's role on the brand does not allow the action (:mod:`brandstudio.app.access`)."""


class LeaseLost(AppError):
    """A worker reported on a job it no longer holds: its lease ran out and the job went back to
    the queue (or to another worker), so its heartbeat, progress or result is refused."""


class MissingDependency(BrandStudioError):
    """An optional dependency is missing; the message names the extra to install."""


def missing_extra(module: str, extra: str) -> MissingDependency:
    """Build the error for an optional import that failed."""
    return MissingDependency(
        f"this feature needs the optional package `{module}`, which is not installed",
        fix=f'pip install "brandstudio[{extra}]"',
    )


@contextmanager
def error_context(*, profile: str | None = None, file: str | None = None, field: str | None = None) -> Iterator[None]:
    """Add where a problem is to any :class:`BrandStudioError` raised inside the block.

    The one place context is added (httpx's ``request_context`` is the model): a stage raises
    with what it knows (the field and value), and the caller that knows the profile or file
    wraps the call. Context already on the error is kept: the innermost is the most precise.

    Example:
        >>> try:
        ...     with error_context(profile="aurora-coffee"):
        ...         raise RequestError("`aspect` must be W:H, got 'wide'", field="aspect")
        ... except RequestError as exc:
        ...     exc.profile, exc.field
        ('aurora-coffee', 'aspect')
    """
    try:
        yield
    except BrandStudioError as exc:
        exc.profile = exc.profile or profile
        exc.file = exc.file or file
        exc.field = exc.field or field
        raise
