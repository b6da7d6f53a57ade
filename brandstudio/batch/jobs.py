"""Jobs: one clip to render each, named by a hash of its inputs so that it is the same job,
with the same output path, in every run.

Example:
    >>> job = make_job("requests[0]", {"product": "Night Roast", "aspect": "9:16", "seed": "7"},
    ...                template="product-hero", output_dir=Path("renders"))
    >>> job.seed, job.variables, job.output.name.startswith("product-hero-9x16-")
    (7, {'product': 'Night Roast'}, True)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..deliveries import Delivery, DeliverySpec, delivery_file, find_delivery
from ..request import RenderRequest

__all__ = ["OUTPUT_NAME", "Job", "JobDefaults", "jobs_from_requests", "make_job"]

#: what an ``output`` name may be: a plain file name (no folders), without ``.mp4``
OUTPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclasses.dataclass(frozen=True)
class Job:
    """One clip to render. ``id`` is a hash of the inputs, stable across runs."""

    id: str
    source: str  # where it came from: "briefs.csv:7", "matrix[3]", "requests[0]"
    template: str | None
    variables: Mapping[str, Any]
    aspect: str | None
    seed: Any
    duration: Any
    resolution: Any
    output: Path  # where the render writes (for a clip bound for a URL: a local staging path)
    problem: str | None = None  # a malformed row: the job fails with this message, unrendered
    url: str | None = None  # the final place on shared storage when the output is an fsspec URL
    deliveries: tuple[str, ...] = ()  # named deliveries: one generation, one file each
    delivered: tuple[Path, ...] = ()  # their files (``<stem>.<delivery>.<container>`` beside ``output``)

    @property
    def location(self) -> str:
        """Where the finished clip lives: its URL, or its local path (the first delivery's, with deliveries)."""
        return self.locations[0]

    @property
    def files(self) -> tuple[Path, ...]:
        """The files the render writes (local: staging paths for a clip bound for a URL): the
        output, or one per delivery."""
        return self.delivered or (self.output,)

    @property
    def locations(self) -> tuple[str, ...]:
        """Where each of :attr:`files` finally lives: on shared storage, or where it is written."""
        if self.url is None:
            return tuple(map(str, self.files))
        folder = self.url.rsplit("/", 1)[0]
        return tuple(f"{folder}/{f.name}" for f in self.files)

    def staged_in(self, folder: Path) -> Job:
        """This job writing its files into ``folder`` (a worker's own staging area), same names."""
        return dataclasses.replace(
            self, output=folder / self.output.name, delivered=tuple(folder / f.name for f in self.delivered)
        )

    @property
    def inputs(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "variables": dict(self.variables),
            "aspect": self.aspect,
            "seed": self.seed,
            "duration": self.duration,
            "resolution": self.resolution,
            **({"deliveries": list(self.deliveries)} if self.deliveries else {}),
        }

    def describe(self) -> str:
        vals = ", ".join(str(v) for v in self.variables.values())
        return f"{self.template or '?'} {self.aspect or ''} [{vals}]".replace("  ", " ")


@dataclasses.dataclass(frozen=True)
class JobDefaults:
    """What a job gets where its own values leave a setting out (a campaign's ``[defaults]``)."""

    aspect: str | None = None
    seed: int | None = None
    duration: float | None = None
    resolution: int | None = None
    variables: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def make_job(
    source: str,
    values: Mapping[str, Any],
    *,
    template: str | None,
    output_dir: Path,
    defaults: JobDefaults = JobDefaults(),
    problem: str | None = None,
    output_url: str | None = None,
    deliveries: Sequence[Delivery] = (),
) -> Job:
    """A job from one row of values: template variables plus the optional keys ``template``,
    ``aspect``, ``seed``, ``duration``, ``resolution`` and ``output`` (a file name without
    ``.mp4``). Text values of numeric keys are parsed (CSV cells); what does not parse is kept
    for the render to reject with a clear message. A job that cannot render carries its
    ``problem`` and fails with it instead. With ``deliveries`` the job's one generation is
    encoded once per delivery, each to its own file."""
    values = dict(values)
    name = values.pop("output", None)
    if name is not None:
        name = str(name).removesuffix(".mp4")
        if not OUTPUT_NAME.match(name):
            problem = problem or (
                f"{source}: output name {name!r} is not a plain file name "
                "(letters, digits, '.', '_', '-'; no folders)"
            )
            name = None
    inputs = {
        "template": values.pop("template", None) or template,
        "aspect": values.pop("aspect", None) or defaults.aspect,
        "seed": _number(values.pop("seed", None), int, defaults.seed),
        "duration": _number(values.pop("duration", None), float, defaults.duration),
        "resolution": _number(values.pop("resolution", None), int, defaults.resolution),
        "variables": {**defaults.variables, **values},
    }
    if inputs["template"] is None:
        problem = problem or f"{source}: no template: set campaign.template or a `template` column"
    if deliveries:  # only then: the ids of jobs without deliveries stay what they were
        inputs["deliveries"] = [d.name for d in deliveries]
    jid = _job_id(inputs, name)
    stem = name or f"{inputs['template'] or 'job'}-{str(inputs['aspect'] or 'auto').replace(':', 'x')}-{jid}"
    output = (output_dir / "staging" if output_url else output_dir) / f"{stem}.mp4"
    return Job(
        id=jid,
        source=source,
        template=inputs["template"],
        variables=inputs["variables"],
        aspect=inputs["aspect"],
        seed=inputs["seed"],
        duration=inputs["duration"],
        resolution=inputs["resolution"],
        output=output,
        problem=problem,
        url=f"{output_url.rstrip('/')}/{stem}.mp4" if output_url else None,
        deliveries=tuple(d.name for d in deliveries),
        delivered=tuple(delivery_file(output, d) for d in deliveries),
    )


def jobs_from_requests(
    requests: Iterable[RenderRequest | Mapping],
    output_dir: Path,
    delivery_entries: Iterable[DeliverySpec] = (),
) -> list[Job]:
    """Jobs for :meth:`BrandStudio.render_many`: a request without ``output`` goes to
    ``output_dir/<template>-<aspect>-<job-id>.mp4``; its deliveries are looked up in the
    profile's ``delivery_entries``, then the presets."""
    delivery_entries = tuple(delivery_entries)
    jobs = []
    for i, r in enumerate(requests):
        req = r if isinstance(r, RenderRequest) else RenderRequest(**r)
        values: dict[str, Any] = {
            **req.variables,
            "template": req.template,
            "aspect": req.aspect,
            "seed": req.seed,
            "duration": req.duration,
            "resolution": req.resolution,
        }
        deliveries = [find_delivery(name, delivery_entries) for name in req.deliveries]
        job = make_job(f"requests[{i}]", values, template=req.template, output_dir=output_dir, deliveries=deliveries)
        if req.output is not None:
            output = Path(req.output)
            job = dataclasses.replace(job, output=output, delivered=tuple(delivery_file(output, d) for d in deliveries))
        jobs.append(job)
    return jobs


def _job_id(inputs: Mapping[str, Any], name: str | None) -> str:
    key = json.dumps([inputs, name], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _number(value: Any, kind: type, default: Any) -> Any:
    """CSV cells are text: '7' -> 7; anything unparsable is kept, and the render rejects it clearly."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            return value
    return value
