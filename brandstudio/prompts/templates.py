"""Prompt templates: TOML files with declared variables, a Jinja2 prompt and timed caption cues.

A template is untrusted input (agencies write them), so it renders in Jinja2's
``ImmutableSandboxedEnvironment`` with ``StrictUndefined``: no attribute access to Python
internals, no mutation, and an undeclared or undefined variable is an error rather than
an empty string. Variables are declared with a type, a default and a description; values
are checked against the declaration before anything renders.

File format (``templates/product-hero.toml``)::

    description = "The product, hero-lit, slowly turning"
    duration = 5.0                      # the timing the caption cues are written for
    prompt = "{{ product }} on a table, {{ setting }}"
    negative = "people, hands"          # optional, added to the brand's negative prompt

    [variables.product]
    type = "str"                        # str | int | float | bool
    description = "Product name"        # no default: required

    [variables.setting]
    type = "str"
    default = "morning light through a window"
    choices = []                        # optional allowed values
    description = "Where the product stands"

    [[captions]]
    start = 0.5
    end = 2.5
    text = "{{ product }}"

Cue times are seconds for a clip of ``duration``; a clip of another length scales them.
A brand's own ``templates/`` directory overrides shared templates of the same name.

A template may ask for a music mood (one of the profile's ``[audio]`` track moods), which may
use its variables: ``music_mood = "upbeat"`` or ``music_mood = "{{ mood }}"``. A render's own
``music_mood`` wins over it.

Named scenes: instead of a ``prompt``, a template may name one of the profile's ``[[scenes]]``
with ``scene``, which may use the template's variables like any other text::

    description = "A brand scene with a caption"
    scene = "{{ scene }}"               # e.g. --var scene=pour-over

    [variables.scene]
    type = "str"
    description = "The id of one of the profile's [[scenes]]"

The footage is then the scene's: its prompt (composed with the brand style and LoRA triggers
as usual), the brand's negative prompt and the scene's seed (unless the request gives one),
so a render hits the scene that ``brandstudio cache prewarm`` put in the scene cache, whatever
the captions, grade or delivery size. A template has either a ``prompt`` or a ``scene``, and a
scene template has no ``negative`` (it would change the scene's pixels). An unknown scene id
is a :class:`~brandstudio.errors.TemplateError` that lists the profile's scenes.

Multi-shot templates: ``[[shots]]`` tables (each a ``prompt`` or ``scene``, a ``duration``, an
optional ``negative``, ``transition``/``crossfade`` and ``continue``) instead of a top-level
``prompt``; the shots are generated one by one and cut together, and the cues are timed against
the whole clip. The format and its rules are in :mod:`brandstudio.prompts.shots`.

Example:
    >>> from pathlib import Path
    >>> from brandstudio.prompts.templates import TemplateLibrary
    >>> lib = TemplateLibrary([Path("templates")])                       # doctest: +SKIP
    >>> lib.get("product-hero").render({"product": "Night Roast"}).prompt  # doctest: +SKIP
    'Night Roast, a bag of specialty coffee on a ...'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import TemplateError
from ..files import read_toml_model
from .shots import RenderedShot, ShotSpec, check_shots

__all__ = ["CueSpec", "PromptTemplate", "RenderedTemplate", "TemplateLibrary", "TemplateSpec", "VariableSpec"]

_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
MAX_VALUE_LENGTH = 300


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VariableSpec(_Model):
    type: Literal["str", "int", "float", "bool"] = "str"
    default: str | int | float | bool | None = None
    description: str = ""
    choices: tuple[str | int | float, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is None


class CueSpec(_Model):
    start: float = Field(ge=0)
    end: float = Field(gt=0)
    text: str = Field(min_length=1)

    @model_validator(mode="after")
    def _order(self) -> CueSpec:
        if self.end <= self.start:
            raise ValueError(f"cue `end` ({self.end}) must be after `start` ({self.start})")
        return self


class TemplateSpec(_Model):
    description: str = ""
    duration: float = Field(5.0, gt=0, le=600)
    prompt: str = ""
    negative: str = ""
    scene: str | None = Field(None, min_length=1)
    music_mood: str | None = Field(None, min_length=1)
    variables: dict[str, VariableSpec] = {}
    captions: tuple[CueSpec, ...] = ()
    shots: tuple[ShotSpec, ...] = ()  # multi-shot templates: see brandstudio/prompts/shots.py

    @model_validator(mode="after")
    def _prompt_or_scene(self) -> TemplateSpec:
        if self.scene is None and not self.prompt.strip() and not self.shots:
            raise ValueError("a template needs a `prompt` (or a `scene` naming one of the profile's [[scenes]])")
        if self.scene is not None and (self.prompt.strip() or self.negative.strip()):
            raise ValueError(
                "a template with a `scene` takes its prompt from the profile's [[scenes]]: "
                "remove `prompt` and `negative`"
            )
        return self


@dataclass(frozen=True)
class RenderedTemplate:
    """A template with its variables filled in."""

    name: str
    prompt: str
    negative: str
    cues: tuple[tuple[float, float, str], ...]  # (start, end, text) in seconds for ``duration``
    duration: float
    variables: Mapping[str, Any]
    scene: str | None = None  # the id of a profile [[scenes]] entry, for scene templates
    music_mood: str | None = None  # the music mood the template asks for
    shots: tuple[RenderedShot, ...] = ()  # multi-shot templates; ``duration`` is then the shots' total

    def scaled_cues(self, clip_duration: float) -> tuple[tuple[float, float, str], ...]:
        """Cue times scaled from the template's nominal duration to ``clip_duration``."""
        k = clip_duration / self.duration
        return tuple((round(s * k, 3), round(min(e * k, clip_duration), 3), t) for s, e, t in self.cues)


_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


@dataclass(frozen=True)
class PromptTemplate:
    """A loaded, compiled template."""

    name: str
    path: Path
    spec: TemplateSpec

    @classmethod
    def load(cls, path: Path) -> PromptTemplate:
        name = path.stem
        spec = read_toml_model(
            path, TemplateSpec, TemplateError, what=f"template {name!r}", kind="template file",
            fix="see the template format in brandstudio/prompts/templates.py or `brandstudio templates list`",
        )
        tpl = cls(name=name, path=path, spec=spec)
        if spec.shots:
            tpl._shots_duration()
        for where, source in tpl._sources():
            try:
                _ENV.parse(source)
            except TemplateSyntaxError as exc:
                raise TemplateError(
                    f"template {name!r} has a Jinja2 syntax error in {where} (line {exc.lineno}): {exc.message}",
                    file=str(path),
                    field=where,
                    fix="fix the {{ }} / {% %} syntax",
                ) from None
        return tpl

    def _sources(self) -> Iterable[tuple[str, str]]:
        if self.spec.prompt:
            yield "prompt", self.spec.prompt
        if self.spec.scene is not None:
            yield "scene", self.spec.scene
        if self.spec.negative:
            yield "negative", self.spec.negative
        if self.spec.music_mood:
            yield "music_mood", self.spec.music_mood
        for i, cue in enumerate(self.spec.captions):
            yield f"captions[{i}].text", cue.text
        for i, shot in enumerate(self.spec.shots):
            for key in ("prompt", "scene", "negative"):
                if getattr(shot, key):
                    yield f"shots[{i}].{key}", getattr(shot, key)

    def _shots_duration(self) -> float:
        """Check the ``[[shots]]`` (:func:`~brandstudio.prompts.shots.check_shots`); the clip's length."""
        s = self.spec
        written = s.duration if "duration" in s.model_fields_set else None
        return check_shots(self.name, self.path, s.shots, top_prompt=s.prompt, top_scene=s.scene, duration=written)

    def coerce(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``values`` against the declared variables; fill defaults; return the full set."""
        declared = self.spec.variables
        unknown = sorted(set(values) - set(declared))
        if unknown:
            raise TemplateError(
                f"template {self.name!r} has no variable {unknown[0]!r}",
                file=str(self.path),
                field=f"variables.{unknown[0]}",
                value=values[unknown[0]],
                fix=f"use one of its declared variables: {', '.join(sorted(declared)) or '(none)'}",
            )
        out: dict[str, Any] = {}
        for key, var in declared.items():
            if key not in values or values[key] is None:
                if var.required:
                    raise TemplateError(
                        f"template {self.name!r} needs the variable {key!r} ({var.description or var.type})",
                        file=str(self.path),
                        field=f"variables.{key}",
                        fix=f"pass {key}=... to render() or --var {key}=... on the command line",
                    )
                out[key] = var.default
                continue
            out[key] = self._coerce_one(key, var, values[key])
        return out

    def _coerce_one(self, key: str, var: VariableSpec, value: Any) -> Any:
        want = _TYPES[var.type]

        def bad(why: str) -> TemplateError:
            return TemplateError(
                f"variable {key!r} of template {self.name!r} {why}",
                file=str(self.path),
                field=f"variables.{key}",
                value=value,
                fix=f"pass a {var.type}" + (f" among {list(var.choices)}" if var.choices else ""),
            )

        if isinstance(value, str) and want is not str:
            try:
                value = {"true": True, "false": False}[value.lower()] if want is bool else want(value)
            except (ValueError, KeyError):
                raise bad(f"must be a {var.type}, got {value!r}") from None
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
            raise bad(f"must be a {var.type}, got {type(value).__name__} {value!r}")
        if want is str:
            if len(value) > MAX_VALUE_LENGTH:
                raise bad(f"is {len(value)} characters long; the limit is {MAX_VALUE_LENGTH}")
            if any(ord(c) < 32 for c in value):
                raise bad("contains control characters")
        if var.choices and value not in var.choices:
            raise bad(f"must be one of {list(var.choices)}, got {value!r}")
        return value

    def render(self, values: Mapping[str, Any]) -> RenderedTemplate:
        """Fill the template with ``values`` in the sandbox."""
        full = self.coerce(values)

        def run(where: str, source: str) -> str:
            try:
                return " ".join(_ENV.from_string(source).render(**full).split())
            except SecurityError as exc:
                raise TemplateError(
                    f"template {self.name!r} tried an operation the sandbox forbids in {where}: {exc}",
                    file=str(self.path),
                    field=where,
                    fix="templates may only use their declared variables and simple filters",
                ) from None
            except UndefinedError as exc:
                raise TemplateError(
                    f"template {self.name!r} uses an undefined value in {where}: {exc.message}",
                    file=str(self.path),
                    field=where,
                    fix="declare the variable under [variables.NAME] or remove it from the template",
                ) from None
            except Exception as exc:  # e.g. a filter applied to the wrong type
                raise TemplateError(
                    f"template {self.name!r} failed to render {where}: {type(exc).__name__}: {exc}",
                    file=str(self.path),
                    field=where,
                    fix="check the expressions in the template",
                ) from None

        prompt = run("prompt", self.spec.prompt) if self.spec.prompt else ""
        scene = run("scene", self.spec.scene) if self.spec.scene is not None else None
        music_mood = run("music_mood", self.spec.music_mood) if self.spec.music_mood else None
        negative = run("negative", self.spec.negative) if self.spec.negative else ""
        cues = tuple(
            (c.start, c.end, run(f"captions[{i}].text", c.text)) for i, c in enumerate(self.spec.captions)
        )
        shots = tuple(
            RenderedShot(
                prompt=run(f"shots[{i}].prompt", sh.prompt) if sh.prompt else "",
                scene=run(f"shots[{i}].scene", sh.scene) if sh.scene else None,
                negative=run(f"shots[{i}].negative", sh.negative) if sh.negative else "",
                duration=float(sh.duration), transition=sh.transition,
                crossfade=float(sh.crossfade or 0.0), continues=sh.continue_,
            )
            for i, sh in enumerate(self.spec.shots)
        )
        duration = self._shots_duration() if shots else self.spec.duration
        return RenderedTemplate(
            self.name, prompt, negative, tuple(c for c in cues if c[2]), duration, full, scene,
            music_mood or None, shots,
        )


class TemplateLibrary:
    """Templates found in a list of directories; earlier directories override later ones."""

    def __init__(self, dirs: Iterable[Path]) -> None:
        self.dirs = [Path(d) for d in dirs if Path(d).is_dir()]

    @classmethod
    def for_profile(cls, root: Path) -> TemplateLibrary:
        """A profile's templates (``<root>/templates``) over the shared ones."""
        return cls([Path(root) / "templates", shared_templates_dir()])

    def names(self) -> list[str]:
        return sorted({p.stem for d in self.dirs for p in d.glob("*.toml")})

    def get(self, name: str) -> PromptTemplate:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise TemplateError(
                f"invalid template name {name!r}", fix="use a name from `brandstudio templates list`"
            )
        for d in self.dirs:
            path = d / f"{name}.toml"
            if path.is_file():
                return PromptTemplate.load(path)
        raise TemplateError(
            f"unknown template {name!r}",
            value=name,
            fix=f"use one of: {', '.join(self.names()) or '(no templates found)'}",
        )

    def all(self) -> list[PromptTemplate]:
        return [self.get(n) for n in self.names()]


def shared_templates_dir() -> Path:
    """The shared ``templates/`` directory: the installed copy, or the repository's in a checkout."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_shared_templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    return here.parent / "templates"
