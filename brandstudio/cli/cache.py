"""``brandstudio cache prewarm|ls|stats|prune``: the scene cache."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table

from ..errors import BrandStudioError, RequestError
from ..generation.cache import SceneCache, parse_size
from ..studio import BrandStudio
from .app import cache_app, err, fail, out
from .display import json_text, plain, safe

_CACHE_HELP = (
    "scene cache directory or fsspec URL (default: $BRANDSTUDIO_SCENE_CACHE or ~/.cache/brandstudio/scenes)"
)


def _open_cache(location: str | None):

    try:
        return SceneCache(location)
    except (ValueError, ImportError, OSError) as exc:
        fail(
            RequestError(
                f"cannot open the scene cache {location!r}: {type(exc).__name__}: {exc}",
                field="--cache",
                value=location,
                fix="give a local directory, or an fsspec URL whose filesystem package is installed (s3fs, gcsfs)",
            )
        )


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _when(t: float) -> str:

    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")


@cache_app.command("prewarm")
def cache_prewarm(
    profile: Path = typer.Argument(..., help="brand profile directory"),
    aspect: str | None = typer.Option(None, "--aspect", "-a", help="render every scene at this aspect ratio"),
    duration: float | None = typer.Option(None, help="seconds (default: the profile's)"),
    cache: str | None = typer.Option(None, "--cache", help=_CACHE_HELP),
    device: str = typer.Option("auto", help="auto, cuda or cpu"),
) -> None:
    """Generate the profile's [[scenes]] into the scene cache (no post stage, no clip)."""

    store = _open_cache(cache)
    try:
        studio = BrandStudio(profile, device=device, cache=store)
        if not studio.profile.spec.scenes:
            err.print(
                f"{plain(studio.profile.id)} has no [[scenes]]: nothing to prewarm",
                markup=False,
                highlight=False,
            )
            return
        with err.status(
            f"prewarming {len(studio.profile.spec.scenes)} scenes of {safe(studio.profile.name)}…"
        ):
            report = studio.prewarm(aspect=aspect, duration=duration)
    except BrandStudioError as exc:
        fail(exc)
    for r in report:
        out.print(
            f"{r['cache']:<4}  {safe(r['scene'])}  {r['seconds']:.2f}s  {r['key'][:16]}", highlight=False
        )


@cache_app.command("ls")
def cache_ls(
    cache: str | None = typer.Option(None, "--cache", help=_CACHE_HELP),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """List cached scenes, most recently used first."""
    entries = _open_cache(cache).ls()
    if as_json:
        rows = [
            {
                "key": e.key,
                "bytes": e.bytes,
                "created": e.created,
                "last_used": e.last_used,
                "shape": list(e.shape),
                "prompt": e.prompt,
            }
            for e in entries
        ]
        print(json_text(json.dumps(rows, indent=2, ensure_ascii=False)))
        return
    table = Table()
    for name, width in (("key", 12), ("size", 8), ("frames", 9), ("last used", 16)):
        table.add_column(name, no_wrap=True, min_width=width)
    table.add_column("prompt", no_wrap=True, overflow="ellipsis", min_width=12)
    for e in entries:
        prompt = e.prompt if len(e.prompt) <= 48 else e.prompt[:47] + "…"
        table.add_row(
            safe(e.key[:12]),
            _human(e.bytes),
            "{}×{}×{}".format(*e.shape[:3]),
            _when(e.last_used),
            safe(prompt),
        )
    out.print(table)


@cache_app.command("stats")
def cache_stats(
    cache: str | None = typer.Option(None, "--cache", help=_CACHE_HELP),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Entries, bytes, hits, misses and corrupt entries dropped."""
    stats = _open_cache(cache).stats()
    if as_json:
        print(json_text(json.dumps(stats, indent=2)))
        return
    total = stats["hits"] + stats["misses"]
    rate = f" ({stats['hits'] / total:.0%} hit rate)" if total else ""
    out.print(
        f"{safe(stats['location'])}\n{stats['entries']} scenes, {_human(stats['bytes'])}; "
        f"{stats['hits']} hits, {stats['misses']} misses{rate}, {stats['corrupt']} corrupt dropped",
        highlight=False,
    )


@cache_app.command("prune")
def cache_prune(
    max_size: str = typer.Option(..., "--max-size", help="keep at most this much, e.g. 500MB or 2GB"),
    cache: str | None = typer.Option(None, "--cache", help=_CACHE_HELP),
) -> None:
    """Evict least-recently-used scenes until the cache fits in --max-size."""

    try:
        limit = parse_size(max_size)
    except ValueError as exc:
        fail(RequestError(str(exc), field="--max-size", value=max_size, fix="use e.g. --max-size 2GB"))
    store = _open_cache(cache)
    evicted = store.prune(limit)
    freed = sum(e.bytes for e in evicted)
    left = store.stats()
    out.print(
        f"evicted {len(evicted)} scenes ({_human(freed)}); {left['entries']} left, {_human(left['bytes'])}",
        highlight=False,
    )
