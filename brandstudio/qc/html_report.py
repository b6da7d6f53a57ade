"""The QC report as one self-contained HTML page: checks, thumbnails, plots, safety, provenance.

Plots (palette distance and flicker against their thresholds, the brand palette next to each
sampled frame's dominant colours, and with a CLIP model each sampled frame's style similarity
and CLIPScore) are drawn with matplotlib's object API (no pyplot state)
and inlined as PNG, so the page is a single file to mail or archive.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

__all__ = ["render_html"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1000px;
color:#1d1d1f;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.badge{display:inline-block;padding:3px 10px;border-radius:12px;color:#fff;font-weight:600;text-transform:uppercase}
.pass{background:#2e7d32}.warn{background:#ed6c02}.fail{background:#c62828}.skip{background:#9e9e9e}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:5px 8px;border-bottom:1px solid #eee;
vertical-align:top}th{color:#555;font-weight:600}.mono{font-family:ui-monospace,Menlo,Consolas,monospace;
font-size:12px;word-break:break-all}.thumbs{display:flex;gap:8px;flex-wrap:wrap}.thumbs figure{margin:0}
.thumbs img{height:160px;border-radius:4px}.thumbs figcaption{font-size:12px;color:#666}img.plot{max-width:100%}
"""


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib: heavy, only for a page

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _series_plot(x, y, warn, fail, title, xlabel, ylabel) -> str:
    from matplotlib.figure import Figure  # matplotlib: heavy, only for a page

    fig = Figure(figsize=(7.5, 2.4))
    ax = fig.add_subplot()
    ax.plot(x, y, marker="o" if len(y) <= 40 else None, ms=3, lw=1.5, color="#1f4e79")
    if warn is not None:
        ax.axhline(warn, color="#ed6c02", ls="--", lw=1, label=f"warn {warn:g}")
    if fail is not None:
        ax.axhline(fail, color="#c62828", ls="--", lw=1, label=f"fail {fail:g}")
    top = max([*(y or [0]), fail or 0, warn or 0]) * 1.1 or 1
    ax.set_ylim(0, top)
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, loc="upper right", frameon=False)
    ax.grid(alpha=0.25)
    return _png(fig)


def _swatch_plot(r) -> str:
    # matplotlib: heavy, only for a page
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    rows = [("brand palette", [(h, 1 / max(1, len(r.palette))) for h in r.palette])]
    rows += [(f"frame {i}", list(dom)) for i, dom in zip(r.sample_indices, r.dominant, strict=True)]
    fig = Figure(figsize=(7.5, 0.28 * len(rows) + 0.6))
    ax = fig.add_subplot()
    for y, (_, cells) in enumerate(rows):
        x = 0.0
        for hexc, w in cells:
            ax.add_patch(Rectangle((x, -y - 0.4 if y == 0 else -y - 0.35), w, 0.8 if y == 0 else 0.7,
                                   color=hexc, ec="white", lw=0.5))  # fmt: skip
            x += w
    ax.set_xlim(0, 1)
    ax.set_ylim(-len(rows) + 0.4, 0.6)
    ax.set_yticks([-y for y in range(len(rows))], [name for name, _ in rows], fontsize=7)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0", "25%", "50%", "75%", "100%"], fontsize=7)
    ax.set_title("brand palette (top) and each sampled frame's dominant colours by pixel share",
                 fontsize=10, loc="left")  # fmt: skip
    for s in ax.spines.values():
        s.set_visible(False)
    return _png(fig)


def render_html(r) -> str:
    """The QC report ``r`` (a :class:`~brandstudio.qc.QCReport`) as one self-contained HTML
    page: inline CSS, thumbnails as base64 JPEG, matplotlib plots as inline PNG."""
    e = html.escape
    rows = "".join(
        f"<tr><td><span class='badge {c.status}'>{c.status}</span></td><td>{e(c.name)}</td>"
        f"<td>{'' if c.value is None else e(f'{c.value:g} {c.unit}'.strip())}</td>"
        f"<td>{'' if c.warn is None else f'{c.warn:g}'} / {'' if c.fail is None else f'{c.fail:g}'}</td>"
        f"<td>{e(c.explanation)}</td></tr>"
        for c in r.checks
    )
    meta = [
        ("clip", r.clip or "(in memory)"),
        ("profile", r.profile_id),
        ("profile fingerprint", r.profile_fingerprint),
        ("model", r.model or "unknown"),
        ("CLIP model", r.clip_model or "none (style and prompt checks skipped)"),
        ("seed", "unknown" if r.seed is None else str(r.seed)),
        ("frames", f"{r.frames} × {r.width}×{r.height}" + (f" @ {r.fps:g} fps" if r.fps else "")),
        (
            "loudness",
            "-" if r.loudness is None else f"{r.loudness:.1f} LUFS, true peak {r.true_peak:.1f} dBTP",
        ),
        ("footage", ", ".join(f"{k} {'-' if v is None else f'{v:g}'}" for k, v in r.footage.items()) or "-"),
        ("timings", ", ".join(f"{k} {v:.2f} s" for k, v in r.timings.items()) or "-"),
        ("created", r.created),
    ]
    meta_rows = "".join(f"<tr><th>{e(k)}</th><td class='mono'>{e(str(v))}</td></tr>" for k, v in meta)
    safety = "".join(
        f"<tr><td>{e(v.get('action', ''))}</td><td>{e(v.get('rule', ''))}</td><td>{e(v.get('where', ''))}</td>"
        f"<td>{e(v.get('matched', ''))}</td><td>{e(v.get('message', ''))}</td></tr>"
        for v in r.safety
    )
    safety_html = (
        "<table><tr><th>action</th><th>rule</th><th>where</th><th>matched</th><th>message</th></tr>"
        f"{safety}</table>"
        if safety
        else "<p>none recorded</p>"
    )
    n_th = len(r.thumbnails)
    thumbs = "".join(
        f"<figure><img alt='frame' src='data:image/jpeg;base64,{base64.b64encode(b).decode('ascii')}'>"
        f"<figcaption>{j + 1} of {n_th}</figcaption></figure>"
        for j, b in enumerate(r.thumbnails)
    )
    t = r.thresholds
    plots = []
    if r.delta_e:
        x = [i / r.fps for i in r.sample_indices] if r.fps else list(r.sample_indices)
        plots.append(_series_plot(x, list(r.delta_e), t.get("delta_e_warn"), t.get("delta_e_fail"),
                                  "palette distance per sampled frame (weighted ΔE2000 to nearest swatch)",
                                  "time (s)" if r.fps else "frame", "ΔE2000"))  # fmt: skip
    if r.flicker:
        x = [(i + 1) / r.fps for i in range(len(r.flicker))] if r.fps else list(range(1, len(r.flicker) + 1))
        plots.append(_series_plot(x, list(r.flicker), t.get("flicker_warn"), t.get("flicker_fail"),
                                  "flicker per transition (mean |frame − previous|)",
                                  "time (s)" if r.fps else "frame", "8-bit levels"))  # fmt: skip
    if r.dominant:
        plots.append(_swatch_plot(r))
    x = [i / r.fps for i in r.clip_indices] if r.fps else list(r.clip_indices)
    xlabel = "time (s)" if r.fps else "frame"
    if r.style_similarity:
        plots.append(_series_plot(x, list(r.style_similarity), t.get("style_warn"), t.get("style_fail"),
                                  "style: CLIP similarity of each sampled frame to its closest reference still "
                                  "(higher is better)", xlabel, "cosine"))  # fmt: skip
    if r.prompt_score:
        plots.append(_series_plot(x, list(r.prompt_score), t.get("prompt_warn"), t.get("prompt_fail"),
                                  "prompt: CLIPScore of each sampled frame (higher is better)", xlabel,
                                  "CLIPScore"))  # fmt: skip
    plot_html = "".join(f"<img class='plot' alt='plot' src='{p}'>" for p in plots)
    title = f"QC {r.status} · {r.profile_id} · {Path(r.clip).name if r.clip else 'clip'}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>Brand QC: {e(Path(r.clip).name if r.clip else "clip")}</h1>
<p><span class="badge {r.status}">{r.status}</span> &nbsp; score <b>{r.score}</b> guidelines passed
(of those tested) for <b>{e(r.profile_id)}</b></p>
<h2>Checks</h2>
<table><tr><th>status</th><th>check</th><th>value</th><th>warn / fail at</th><th>why</th></tr>{rows}</table>
<h2>Frames</h2><div class="thumbs">{thumbs or "<p>no thumbnails</p>"}</div>
<h2>Plots</h2>{plot_html}
<h2>Safety verdicts</h2>
{safety_html}
<h2>Provenance</h2><table>{meta_rows}</table>
</body></html>
"""
