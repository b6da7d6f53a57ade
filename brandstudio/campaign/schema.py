"""The campaign file's schema: one pydantic model per TOML table (``brandstudio campaign``).

``[campaign]`` (:class:`CampaignSection`), ``[defaults]`` (:class:`DefaultsSection`), ``[ray]``
(:class:`RaySection`) and ``[matrix]`` (template variables and job settings, each a list of
values). Unknown keys are errors, so a misspelt key is reported rather than ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..profile.schema import parse_aspect

__all__ = ["BACKENDS", "CampaignSection", "CampaignSpec", "DefaultsSection", "RaySection", "Value"]

#: where a campaign renders: this process, or a Ray cluster (:mod:`brandstudio.distributed`)
BACKENDS = ("local", "ray")
#: a value in a campaign file: a template variable or a job setting
Value = str | int | float | bool


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CampaignSection(_Model):
    """``[campaign]``: what to render, for which profile, and where the clips go."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="campaign id")
    profile: str = Field(min_length=1, description="profile directory, relative to the campaign file")
    template: str | None = Field(None, description="template name; a CSV/matrix `template` may override it")
    output_dir: str | None = Field(
        None,
        description="a folder relative to the campaign file (default: renders/<name>), or an fsspec URL "
        "(s3://bucket/spring, gs://..., file:///shared/renders) for shared storage",
    )
    state_dir: str | None = Field(
        None,
        description="where the manifest, audit log and lock live when output_dir is a URL "
        "(default: .brandstudio/<name> next to the campaign file); ignored for a local output_dir",
    )
    csv: str | None = Field(None, description="a CSV of variable rows, relative to the campaign file")
    backend: Literal["local", "ray"] = "local"
    deliveries: list[str] = Field(
        [],
        max_length=16,
        description="every job is generated once and encoded once per named delivery (the profile's "
        "[[deliveries]] or a preset such as broadcast-1080p25), each to <clip>.<delivery>.<container>",
    )
    description: str = ""


class RaySection(_Model):
    """``[ray]``: the cluster backend (``backend = "ray"`` or ``campaign run --ray ADDRESS``)."""

    address: str | None = Field(
        None,
        description="'auto' (the cluster this machine belongs to), 'ray://head:10001', 'head:6379', "
        "or 'local' to start a Ray instance on this machine; default: 'auto'",
    )
    workers: int | None = Field(None, ge=1, le=4096, description="render actors; default: one per GPU")
    gpus_per_worker: float = Field(1.0, ge=0, le=64, description="GPUs each actor reserves (0: CPU workers)")
    cpus_per_worker: float = Field(1.0, ge=0, le=1024, description="CPUs each actor reserves")


class DefaultsSection(_Model):
    """``[defaults]``: values every job gets unless its row or matrix cell says otherwise."""

    aspect: str | None = None
    seed: int | None = Field(None, ge=0, lt=2**63)
    duration: float | None = Field(None, gt=0, le=120)
    resolution: int | None = Field(None, ge=64, le=4320)
    variables: dict[str, Value] = {}

    @field_validator("aspect")
    @classmethod
    def _aspect(cls, v: str | None) -> str | None:
        if v is not None:
            parse_aspect(v)
        return v


class CampaignSpec(_Model):
    """A whole campaign file."""

    campaign: CampaignSection
    defaults: DefaultsSection = DefaultsSection()
    ray: RaySection = RaySection()
    matrix: dict[str, list[Value]] = {}

    @field_validator("matrix")
    @classmethod
    def _non_empty(cls, v: dict[str, list[Value]]) -> dict[str, list[Value]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"matrix.{key} is empty; give at least one value")
            if key == "output":
                raise ValueError("`output` cannot be a matrix key (each clip needs its own name)")
        return v
