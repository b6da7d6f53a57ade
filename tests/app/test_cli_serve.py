"""``brandstudio serve`` as the README runs it (a process on 127.0.0.1 with the demo profiles, the
first admin and its worker thread, signed into over HTTP, stopped by SIGTERM); its refusals; and
the Ray options of ``serve`` and ``worker`` (their errors; a Ray cluster is in test_ray_worker.py)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

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


ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_serve_command_starts_the_app_with_the_demo_brands_and_the_first_admin(tmp_path):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("uvicorn")
    assert "brandstudio serve --admin-email admin@agency.example" in (ROOT / "README.md").read_text(encoding="utf-8")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "BRANDSTUDIO_ADMIN_PASSWORD": "a long passphrase", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "brandstudio.cli", "serve", "--admin-email", "admin@agency.example",
           "--data-dir", str(tmp_path / "studio-data"), "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                if httpx.get(f"{base}/login", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not answer in 60 s"
            time.sleep(0.3)
        with httpx.Client(base_url=base, follow_redirects=False) as c:
            csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
            res = c.post("/login", data={"email": "admin@agency.example", "password": "a long passphrase", "csrf": csrf})
            assert res.status_code == 303, res.text
            home = c.get("/").text
            assert "Aurora Coffee" in home and "青岚茶" in home  # the demo profiles, as brands
            assert "script-src 'self'" in c.get("/").headers["content-security-policy"]
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert "admin admin@agency.example created" in output and f"http://127.0.0.1:{port}/" in output
    assert "Traceback" not in output, output
    assert server.returncode == 128 + signal.SIGTERM, (server.returncode, output)  # the CLI's exit status for SIGTERM


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
