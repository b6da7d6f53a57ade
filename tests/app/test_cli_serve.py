"""``brandstudio serve`` up to the point it would listen: migrations, brands, the first admin."""

from __future__ import annotations

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
