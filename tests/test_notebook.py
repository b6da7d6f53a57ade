"""The quickstart notebook runs top to bottom and renders a clip with each demo profile."""

from __future__ import annotations

from pathlib import Path

import nbformat
from helpers import REPO, probe
from nbclient import NotebookClient


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("BRANDSTUDIO_NOTEBOOK_OUT", str(tmp_path))
    nb = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO / "notebooks")}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    videos = [o for o in outputs if "text/html" in o.get("data", {}) and "<video" in o["data"]["text/html"]]
    assert len(videos) == 2  # both clips shown inline
    clips = sorted(Path(tmp_path).rglob("*.mp4"))
    assert {p.parent.name for p in clips} == {"aurora-coffee", "qinglan-tea"}
    for p in clips:
        assert probe(p)["video_codec"] == "h264"
    text = "".join(o.get("text", "") for o in outputs)
    assert "competitor:starbucks" in text
