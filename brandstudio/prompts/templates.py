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
    max_length = 80                     # optional: min_length / max_length for a str
    description = "Where the product stands"

    [variables.discount]
    type = "int"
    min = 5                             # optional: min / max for an int or float (inclusive)
    max = 70
    description = "Discount in percent"

    [[captions]]
    start = 0.5
    end = 2.5
    text = "{{ product }}"

Limits (:class:`VariableSpec`): ``min`` / ``max`` only on an int or float, ``min_length`` /
``max_length`` only on a str (``max_length`` at most :data:`MAX_VALUE_LENGTH`, 300, which also
bounds a str without one), none on a bool; ``min`` <= ``max``, and the default and every choice
within them, all checked when the template loads (a :class:`~brandstudio.errors.TemplateError`
naming the file and ``variables.NAME.FIELD``). :meth:`PromptTemplate.coerce` checks every value
against them, wherever it comes from (the CLI's ``--var``, ``render()``, a campaign's CSV, the
review app's form, API and CSV briefs): "variable 'discount' of template 'promo' must be at most
70, got 150", field ``variables.discount``, with the fix.

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

Limits: a template cannot hang a render or fill memory. One render of a template runs under
``$BRANDSTUDIO_MAX_TEMPLATE_SECONDS`` (2 s), ``$BRANDSTUDIO_MAX_TEMPLATE_LOOPS`` loop iterations
and calls in all (10000: three nested loops of 1000 each are refused although each stays under
the sandbox's range limit), and produces at most ``$BRANDSTUDIO_MAX_TEMPLATE_OUTPUT``
characters per text; no value it builds (``"x" * n``, ``replace``, ``join``, ``center``,
``format`` widths, ``~``) may be larger than that either, checked *before* it is built where
the size is known in advance. Each is a :class:`~brandstudio.errors.TemplateError` that names
the limit and the variable that raises it (see :mod:`brandstudio.files`). Recursive loops
(``{% for ... recursive %}``) are refused: a prompt has no tree to walk.

Example:
    >>> from pathlib import Path
    >>> from brandstudio.prompts.templates import TemplateLibrary
    >>> lib = TemplateLibrary([Path("templates")])                       # doctest: +SKIP
    >>> lib.get("product-hero").render({"product": "Night Roast"}).prompt  # doctest: +SKIP
    'Night Roast, a bag of specialty coffee on a ...'
"""

from __future__ import annotations

import contextvars
import functools
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ..errors import TemplateError
from ..files import (
    MAX_TEMPLATE_LOOPS,
    MAX_TEMPLATE_OUTPUT,
    MAX_TEMPLATE_SECONDS,
    FieldProblem,
    Limit,
    read_toml_model,
)
from .shots import RenderedShot, ShotSpec, check_shots

__all__ = ["CueSpec", "PromptTemplate", "RenderedTemplate", "TemplateLibrary", "TemplateSpec", "VariableSpec"]

_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
MAX_VALUE_LENGTH = 300


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _a(type_: str) -> str:
    return f"an {type_}" if type_ == "int" else f"a {type_}"


class VariableSpec(_Model):
    """A declared variable: its type, default (none: required), choices and limits.

    Limits: ``min`` / ``max`` bound an int or float variable's value (inclusive); ``min_length`` /
    ``max_length`` bound a str variable's characters (``max_length`` at most, and by default,
    :data:`MAX_VALUE_LENGTH`). A bool takes none. The default and every choice must be within them.
    """

    type: Literal["str", "int", "float", "bool"] = "str"
    default: str | int | float | bool | None = None
    description: str = ""
    choices: tuple[str | int | float, ...] = ()
    min: int | float | None = None
    max: int | float | None = None
    min_length: int | None = None
    max_length: int | None = None

    @field_validator("min", "max", mode="before")
    @classmethod
    def _number(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"`{info.field_name}` must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"`{info.field_name}` must be a finite number, got {value!r}")
        return value

    @field_validator("min_length", "max_length", mode="before")
    @classmethod
    def _count(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"`{info.field_name}` must be a whole number of characters, got {value!r}")
        return value

    @property
    def required(self) -> bool:
        return self.default is None

    @property
    def max_chars(self) -> int:
        """The most characters a str value may have: ``max_length``, else :data:`MAX_VALUE_LENGTH`."""
        return MAX_VALUE_LENGTH if self.max_length is None else self.max_length

    def limits_text(self) -> str:
        """The declared limits in words ("from 5 to 70", "of at most 60 characters"); "" if none."""
        if self.type in ("int", "float"):
            lo, hi, unit = self.min, self.max, ""
        elif self.type == "str":
            lo, hi, unit = self.min_length, self.max_length, " characters"
        else:
            return ""
        if lo is not None and hi is not None:
            return f"from {lo} to {hi}{unit}" if not unit else f"of {lo} to {hi}{unit}"
        if lo is not None:
            return f"of at least {lo}{unit}"
        if hi is not None:
            return f"of at most {hi}{unit}"
        return ""

    def limit_problem(self, value: Any) -> tuple[str, str] | None:
        """Why ``value`` (already of the variable's type) is outside the limits, and the fix; ``None``
        when it is within them (a value of another type is not this method's to judge)."""
        if isinstance(value, bool):
            return None
        if self.type in ("int", "float") and isinstance(value, (int, float)):
            if self.min is None and self.max is None:
                return None
            fix = f"pass {_a(self.type)} {self.limits_text()}"
            if isinstance(value, float) and math.isnan(value):  # (an int may be too large for a float)
                return f"must be a number {self.limits_text()}, got {value}", fix
            if self.min is not None and value < self.min:
                return f"must be at least {self.min}, got {value}", fix
            if self.max is not None and value > self.max:
                return f"must be at most {self.max}, got {value}", fix
        elif self.type == "str" and isinstance(value, str):
            if len(value) > self.max_chars:
                return (f"is {len(value)} characters long; the limit is {self.max_chars}",
                        f"shorten it to at most {self.max_chars} characters")  # fmt: skip
            if self.min_length is not None and len(value) < self.min_length:
                return (f"is {len(value)} characters long; it needs at least {self.min_length}",
                        f"pass a str {self.limits_text()}")  # fmt: skip
        return None

    @model_validator(mode="after")
    def _limits(self) -> VariableSpec:
        for name in ("min", "max", "min_length", "max_length"):
            value = getattr(self, name)
            if value is None:
                continue
            if self.type == "bool":
                raise FieldProblem(name, f"a bool variable takes no limits, got `{name}` = {value!r}",
                                   fix=f"remove `{name}`", value=value)  # fmt: skip
            if name in ("min", "max") and self.type == "str":
                raise FieldProblem(
                    name, f"`{name}` limits the value of an int or float variable, not a str",
                    fix=f"use `{name}_length` to limit the characters of a str "
                    "(or make the variable an int or float)",
                    value=value,
                )  # fmt: skip
            if name.endswith("_length") and self.type != "str":
                raise FieldProblem(
                    name, f"`{name}` limits the characters of a str variable, not {_a(self.type)}",
                    fix=f"use `{name[:3]}` to limit the value of {_a(self.type)}", value=value,
                )  # fmt: skip
            if self.type == "int" and isinstance(value, float):
                raise FieldProblem(name, f"`{name}` of an int variable must be a whole number, got {value}",
                                   fix=f"write `{name}` without a decimal point", value=value)  # fmt: skip
        if self.min_length is not None and self.min_length < 0:
            raise FieldProblem("min_length", f"`min_length` must be 0 or more, got {self.min_length}",
                               fix="set `min_length` to 0 or more", value=self.min_length)  # fmt: skip
        if self.max_length is not None and not 1 <= self.max_length <= MAX_VALUE_LENGTH:
            raise FieldProblem(
                "max_length", f"`max_length` must be from 1 to {MAX_VALUE_LENGTH}, got {self.max_length}",
                fix=f"set `max_length` from 1 to {MAX_VALUE_LENGTH} (no value may be longer)",
                value=self.max_length,
            )  # fmt: skip
        if self.min is not None and self.max is not None and self.min > self.max:
            raise FieldProblem("min", f"`min` ({self.min}) is larger than `max` ({self.max})",
                               fix="make `min` at most `max` (swap them?)", value=self.min)  # fmt: skip
        if self.min_length is not None and self.min_length > self.max_chars:
            raise FieldProblem(
                "min_length", f"`min_length` ({self.min_length}) is larger than "
                + (f"`max_length` ({self.max_length})" if self.max_length is not None else
                   f"the limit on every value ({MAX_VALUE_LENGTH} characters)"),
                fix="make `min_length` at most `max_length`", value=self.min_length,
            )  # fmt: skip
        within = self.limits_text() or f"of at most {self.max_chars} characters"  # (a str without max_length)
        if self.default is not None and (problem := self.limit_problem(self.default)):
            raise FieldProblem("default", f"`default` {problem[0]}", value=self.default,
                               fix=f"choose a default {within}, or widen the limits")  # fmt: skip
        for i, choice in enumerate(self.choices):
            if problem := self.limit_problem(choice):
                raise FieldProblem(f"choices[{i}]", f"the choice {choice!r} {problem[0]}", value=choice,
                                   fix=f"keep every choice {within}, or widen the limits")  # fmt: skip
        return self


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


# -- the bounded sandbox ---------------------------------------------------------------------
#
# Jinja2's sandbox stops a template reaching Python internals, but not from spending unbounded
# time or memory: ``range`` is capped, yet three nested loops of 1000 run a billion times, and
# ``"x" * 10**9`` or a doubling ``~`` builds gigabytes. ``_BoundedSandbox`` keeps the sandbox
# (it only adds checks, then defers to it) and charges every step of a render to a budget:
# loop iterations and calls, time, characters emitted, and the size of every value built.
# The template's syntax tree is rewritten so that each loop, each output and each ``~`` passes
# through a counting filter; operators, calls and filters are checked by the environment.

#: the largest integer a template may compute, in bits (``2 ** 10 ** 9`` would take minutes)
MAX_INT_BITS = 4096


class _OverLimit(Exception):
    """A render went over one of the limits (turned into a TemplateError by ``render``)."""

    def __init__(self, message: str, limit: Limit | None) -> None:
        super().__init__(message)
        self.limit = limit


class _Budget:
    """What one render of a template may still spend."""

    def __init__(self) -> None:
        self.seconds = MAX_TEMPLATE_SECONDS.value()
        self.deadline = time.monotonic() + self.seconds
        self.steps = self.max_steps = MAX_TEMPLATE_LOOPS.value()
        self.max_chars = MAX_TEMPLATE_OUTPUT.value()
        self.chars = self.max_chars

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise _OverLimit(f"took longer than {self.seconds:g} s to render", MAX_TEMPLATE_SECONDS)

    def step(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise _OverLimit(f"runs more than {self.max_steps} loop iterations and calls", MAX_TEMPLATE_LOOPS)
        self.tick()

    def emit(self, text: str) -> str:
        self.chars -= len(text)
        if self.chars < 0:
            raise _OverLimit(f"produces more than {self.max_chars} characters", MAX_TEMPLATE_OUTPUT)
        self.tick()
        return text

    def allow(self, size: int, what: str) -> None:
        """Refuse a value of ``size`` characters before it is built."""
        if size > self.max_chars:
            raise _OverLimit(f"builds {what} of over {self.max_chars} characters", MAX_TEMPLATE_OUTPUT)

    def checked(self, value: Any) -> Any:
        """``value``, once its size (characters, items, nested) is within the limit."""
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
            raise _OverLimit(f"computes a number of over {MAX_INT_BITS} bits", None)
        if isinstance(value, (str, list, tuple, dict, set, frozenset)):
            self.allow(_weight(value, self.max_chars), "a value")
        return value


def _weight(value: Any, cap: int) -> int:
    """Characters and items in ``value``, nested (stops counting once past ``cap``)."""
    total, stack = 0, [value]
    while stack and total <= cap:
        v = stack.pop()
        if isinstance(v, str):
            total += len(v)
        elif isinstance(v, dict):
            total += len(v)
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple, set, frozenset)):
            total += len(v)
            stack.extend(v)
        else:
            total += 1
    return total


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("template_budget", default=None)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # rendered outside PromptTemplate.render: a fresh budget
        budget = _Budget()
        _BUDGET.set(budget)
    return budget


#: ``{...}`` fields of a str.format string, and ``%`` conversions, whose widths make text
_FORMAT_FIELD = re.compile(r"\{[^{}]*\}")
_PERCENT_SPEC = re.compile(r"%[-#0 +(\w)]*(\d+|\*)?(?:\.(\d+|\*))?[a-zA-Z%]")


def _format_size(fmt: str, args: Iterable[Any], fields: list[str], budget: _Budget) -> None:
    """Refuse a format string whose widths or repeated arguments would build too much text."""
    widths = [int(n) for f in fields for n in re.findall(r"\d+", f)]
    if any(w > budget.max_chars for w in widths):
        raise _OverLimit(f"formats a field wider than {budget.max_chars} characters", MAX_TEMPLATE_OUTPUT)
    biggest = max((_weight(a, budget.max_chars) for a in args), default=0)
    budget.allow(len(fmt) + len(fields) * (biggest + max(widths, default=0)), "formatted text")


def _int_args(args: Iterable[Any], budget: _Budget) -> None:
    for a in args:
        if isinstance(a, int) and not isinstance(a, bool) and a > budget.max_chars:
            raise _OverLimit(f"passes the number {a} where a width or count is read", MAX_TEMPLATE_OUTPUT)


def _text_size_before(name: str, value: Any, args: tuple, kwargs: dict, budget: _Budget) -> None:
    """The size of what a str method or a filter named ``name`` would build, checked before it is."""
    cap = budget.max_chars
    if name == "replace" and isinstance(value, str) and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        count = (len(value) + 1) if old == "" else value.count(old)
        budget.allow(len(value) + count * max(0, len(new) - len(old)), "replaced text")
    elif name == "join" and isinstance(value, (list, tuple)):
        sep = args[0] if args else kwargs.get("d", "")
        budget.allow(_weight(value, cap) + len(value) * len(str(sep)[: cap + 1]), "joined text")
    elif name == "join" and isinstance(value, str) and args and isinstance(args[0], (list, tuple)):
        budget.allow(_weight(args[0], cap) + len(args[0]) * len(value), "joined text")  # sep.join(items)
    elif name == "indent" and isinstance(value, str):
        width = args[0] if args else kwargs.get("width", 4)
        per_line = width if isinstance(width, int) else len(str(width)[: cap + 1])
        budget.allow(len(value) + (value.count("\n") + 1) * per_line, "indented text")
    elif name == "expandtabs" and isinstance(value, str):
        size = args[0] if args else kwargs.get("tabsize", 8)
        budget.allow(len(value) + value.count("\t") * (size if isinstance(size, int) else 8), "expanded text")
    elif name == "format" and isinstance(value, str):
        values = list(args) + list(kwargs.values())
        _format_size(value, values, [m.group() for m in _PERCENT_SPEC.finditer(value)], budget)
        if "*" in value:
            _int_args(values, budget)


def _guard_filter(name: str, func: Callable) -> Callable:
    """``func`` (a Jinja2 filter) with the render's budget checked before and after."""

    @functools.wraps(func)  # keeps jinja_pass_arg (pass_context, pass_environment, ...)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.tick()
        real = [a for a in args if not isinstance(a, (Context, ImmutableSandboxedEnvironment, nodes.EvalContext))]
        value, rest = (real[0], tuple(real[1:])) if real else (None, ())
        _int_args([*rest, *kwargs.values()], budget)
        _text_size_before(name, value, rest, kwargs, budget)
        return budget.checked(func(*args, **kwargs))

    return guarded


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with every operator, call and filter charged to the budget."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)  # random filler text of any length: no use in a prompt
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.filters.update(_bs_loop=_loop_filter, _bs_emit=_emit_filter, _bs_value=_value_filter)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.tick()
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                    budget.allow(_weight(seq, budget.max_chars) * max(n, 0), "repeated text")
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise _OverLimit(f"computes a number of over {MAX_INT_BITS} bits", None)
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
            if right > 0 and abs(left).bit_length() * right > MAX_INT_BITS:
                raise _OverLimit(f"computes a number of over {MAX_INT_BITS} bits", None)
        elif operator == "%" and isinstance(left, str):
            values = right if isinstance(right, tuple) else [right]
            _format_size(left, values, [m.group() for m in _PERCENT_SPEC.finditer(left)], budget)
            if "*" in left:
                _int_args(values, budget)
        return budget.checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget = _budget()
        budget.step()  # a macro or function call costs one step, like a loop iteration
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, (str, list, tuple)):  # a method of a value: str.center(10**9), ...
            _int_args([*args, *kwargs.values()], budget)
            _text_size_before(getattr(__obj, "__name__", ""), owner, args, kwargs, budget)
        return budget.checked(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            budget = _budget()
            values = [*args, *kwargs.values()]
            if value.__name__ == "format_map" and args and isinstance(args[0], Mapping):
                values = list(args[0].values())
            _int_args(values, budget)
            _format_size(fmt, values, _FORMAT_FIELD.findall(fmt), budget)
            return budget.checked(wrapped(*args, **kwargs))

        return checked


@pass_context  # (pass_context also keeps Jinja2 from running it at compile time)
def _loop_filter(context: Context, iterable: Any) -> Iterator[Any]:
    """Every ``{% for %}``'s iterable: each iteration costs one step."""
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


@pass_context
def _emit_filter(context: Context, value: Any) -> str:
    """Every ``{{ }}`` and text block: counted against the characters a render may produce."""
    budget = _budget()
    budget.checked(value)
    return budget.emit(str(value))


@pass_context
def _value_filter(context: Context, value: Any) -> Any:
    """Every ``a ~ b``: the joined text is checked (it cannot double without limit)."""
    return _budget().checked(value)


def _wrap(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=getattr(node, "lineno", 1))


class _Metered(NodeTransformer):
    """Rewrites a parsed template so that loops, output and ``~`` pass through the counters."""

    def visit_For(self, node: nodes.For) -> nodes.For:
        if node.recursive:
            raise TemplateSyntaxError(
                "recursive loops are not allowed in prompt templates", node.lineno
            )
        self.generic_visit(node)
        node.iter = _wrap(node.iter, "_bs_loop")
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Output:
        self.generic_visit(node)
        node.nodes = [_wrap(child, "_bs_emit") for child in node.nodes]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        self.generic_visit(node)
        return _wrap(node, "_bs_value")


_ENV = _BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


@functools.lru_cache(maxsize=512)
def _compile(source: str):
    """``source`` parsed, metered (:class:`_Metered`) and compiled (raises TemplateSyntaxError)."""
    return _ENV.from_string(_Metered().visit(_ENV.parse(source)))


def _render_failure(exc: Exception) -> tuple[str, str]:
    """What went wrong in a template render (completing "template 'x' ... in <field>") and the fix."""
    if isinstance(exc, _OverLimit):
        return str(exc), "simplify the template (fewer or shorter loops, less repeated text)" + (
            f"; or {exc.limit.fix()}" if exc.limit else ""
        )
    if isinstance(exc, RecursionError):
        return "recurses too deeply", "remove the macro that calls itself"
    if isinstance(exc, MemoryError):
        return "ran out of memory", "simplify the template (less repeated text)"
    if isinstance(exc, SecurityError):
        return (f"tried an operation the sandbox forbids ({exc})",
                "templates may only use their declared variables and simple filters")  # fmt: skip
    if isinstance(exc, UndefinedError):
        return (f"uses an undefined value ({exc.message})",
                "declare the variable under [variables.NAME] or remove it from the template")  # fmt: skip
    # e.g. a filter applied to the wrong type
    return f"failed to render ({type(exc).__name__}: {exc})", "check the expressions in the template"


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
                _compile(source)
            except TemplateSyntaxError as exc:
                raise TemplateError(
                    f"template {name!r} has a Jinja2 syntax error in {where} (line {exc.lineno}): {exc.message}",
                    file=str(path),
                    field=where,
                    fix="fix the {{ }} / {% %} syntax",
                ) from None
            except (RecursionError, MemoryError, SyntaxError):  # Jinja2's parser recurses per level
                raise TemplateError(
                    f"template {name!r} nests brackets or blocks too deeply in {where} to be parsed",
                    file=str(path),
                    field=where,
                    fix="write the expression with fewer nested (), [], {} or {% %} blocks",
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

        def bad(why: str, fix: str | None = None) -> TemplateError:
            return TemplateError(
                f"variable {key!r} of template {self.name!r} {why}",
                file=str(self.path),
                field=f"variables.{key}",
                value=value,
                fix=fix or f"pass a {var.type}" + (f" among {list(var.choices)}" if var.choices else ""),
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
        if (problem := var.limit_problem(value)) is not None:  # min/max, min_length/max_length
            raise bad(*problem)
        if want is str and any(ord(c) < 32 for c in value):
            raise bad("contains control characters")
        if var.choices and value not in var.choices:
            raise bad(f"must be one of {list(var.choices)}, got {value!r}")
        return value

    def render(self, values: Mapping[str, Any]) -> RenderedTemplate:
        """Fill the template with ``values`` in the sandbox."""
        full = self.coerce(values)
        token = _BUDGET.set(_Budget())  # one budget for every text of this render
        try:
            return self._render(full)
        finally:
            _BUDGET.reset(token)

    def _render(self, full: dict[str, Any]) -> RenderedTemplate:
        def run(where: str, source: str) -> str:
            try:
                return " ".join(_compile(source).render(**full).split())
            except Exception as exc:  # noqa: BLE001 - every failure of a user's template is a TemplateError
                what, fix = _render_failure(exc)
                raise TemplateError(
                    f"template {self.name!r} {what} in {where}", file=str(self.path), field=where, fix=fix
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
            if os.path.lexists(path):  # a FIFO or folder by that name is an error, not "unknown"
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
