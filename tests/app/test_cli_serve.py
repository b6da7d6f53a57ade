"""``brandstudio serve`` up to the point it would listen: migrations, brands, the first admin; and
the Ray options of ``serve`` and ``worker`` (their errors; a Ray cluster is in test_ray_worker.py)."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from brandstudio.cli import app


def test_serve_without_the_admin_password_says_how_to_set_it(tmp_path, monkeypatch):
    pytest.importorskip("fastapi")
    monkeypatch.delenv("BRANDSTUDIO_ADMIN_PASSWORD", raising=False)
    res = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path / "data"), "--profiles", str(tmp_path / "none"),
                                   "--admin-email", "admin@agency.example", "--no-worker"])  # fmt: skip
    assert res.exit_code == 2
    assert "BRANDSTUDIO_ADMIN_PASSWORD" in res.output and (tmp_path / "data" / "brandstudio.db").is_file()


def test_worker_help_documents_the_ray_worker():
    res = CliRunner().invoke(app, ["worker", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for option in ("--ray", "--ray-workers", "--gpus-per-worker"):
        assert option in res.output
    assert "shared storage" in res.output


def said(res) -> str:
    """The command's output with the console's line wrapping undone."""
    return " ".join(res.output.split())


def test_ray_options_without_ray_or_without_the_worker_are_refused(tmp_path):
    res = CliRunner().invoke(app, ["worker", "--data-dir", str(tmp_path), "--ray-workers", "2"])
    assert res.exit_code == 2 and "add --ray ADDRESS" in said(res)
    res = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path), "--ray", "auto", "--no-worker"])
    assert res.exit_code == 2 and "--no-worker turns off" in said(res)
    assert not (tmp_path / "brandstudio.db").exists()  # refused before anything started


def test_a_ray_worker_without_ray_installed_says_how_to_install_it(db_url, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails, as where it is not installed
    res = CliRunner().invoke(
        app, ["worker", "--database", db_url, "--data-dir", str(tmp_path), "--ray", "local"]
    )
    assert res.exit_code == 2, res.output
    assert 'pip install "brandstudio[ray]"' in said(res) and "field: --ray" in said(res)
    assert "Traceback" not in res.output
