"""A Ray cluster with token authentication (Ray 2.60+ ``ray start --head``) and a client without
the token: the error says authentication, and how to fix it, not "start a cluster".

What Ray does, observed with ray 2.60 against a real head (the slow test below repeats it):
``ray.init(address=...)`` retries for ~20 s and raises a bare ``ConnectionError("Failed to
connect to Ray cluster at HOST:PORT")``; the cause is only in the C++ client's log lines on
file descriptor 2 ("Unauthenticated: RPC error: InvalidAuthToken: Authentication token is
missing or incorrect") and in the head's ``session_latest/logs/gcs_server.out`` ("Missing
authorization header in request!"). With ``RAY_AUTH_MODE=token`` and no token at all, Ray raises
``ray.exceptions.AuthenticationError`` before connecting.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import PROFILES

from brandstudio.distributed import ray_backend
from brandstudio.distributed.ray_backend import connection_error

CLIENT_LOG = (
    "[2026-12-02 16:51:34,504 W 3085 3085] gcs_client.cc:210: Failed to get cluster ID from GCS server: "
    "Unauthenticated: RPC error: InvalidAuthToken: Authentication token is missing or incorrect\n"
)
SERVER_LOG = "[2026-12-02 16:51:34,503 W 2745 2774] (gcs_server) server_call.h:384: Missing authorization header in request!\n"
REFUSED = ConnectionError("Failed to connect to Ray cluster at 192.0.2.2:26391")


@pytest.fixture(autouse=True)
def no_auth_mode(monkeypatch):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)


def assert_names_auth(err) -> None:
    assert "token authentication failed" in err.message, err.message
    assert err.field == "ray.address"
    for what in ("export RAY_AUTH_MODE=token", "~/.ray/auth_token", "RAY_AUTH_TOKEN", "ray get-auth-token"):
        assert what in err.fix, err.fix


@pytest.mark.parametrize("where", ["client log", "server log"])
def test_a_refused_token_is_named_from_rays_logs(where):
    logs = {"client_log": CLIENT_LOG} if where == "client log" else {"server_log": SERVER_LOG}
    err = connection_error("auto", REFUSED, **logs)
    assert_names_auth(err)
    assert "RAY_AUTH_MODE is unset" in err.message and "Failed to connect" in err.message


def test_no_cluster_is_still_no_cluster():
    notice = "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out."
    err = connection_error(
        "auto", ConnectionError("Could not find any running Ray instance."), client_log=notice
    )
    assert "token" not in err.message and "ray start --head" in err.fix


def fake_ray(on_init):
    return SimpleNamespace(
        init=lambda **kw: on_init(), exceptions=SimpleNamespace(RayError=type("RayError", (Exception,), {}))
    )


def test_the_clients_native_log_is_read_and_not_shown(capfd):
    def refuse():
        os.write(2, CLIENT_LOG.encode())  # as Ray's C++ client does, past sys.stderr
        raise REFUSED

    with pytest.raises(Exception) as e:
        ray_backend._connect(fake_ray(refuse), "127.0.0.1:6379")
    assert_names_auth(e.value)
    assert "InvalidAuthToken" not in capfd.readouterr().err


def test_only_what_the_cluster_logged_during_this_attempt_counts(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    log = tmp_path / "ray" / "session_latest" / "logs" / "gcs_server.out"
    log.parent.mkdir(parents=True)
    log.write_text(SERVER_LOG)  # an earlier client's refusal
    with pytest.raises(Exception) as e:
        ray_backend._connect(fake_ray(lambda: (_ for _ in ()).throw(REFUSED)), "auto")
    assert "token" not in e.value.message

    def refuse():
        with log.open("a") as f:
            f.write(SERVER_LOG)
        raise REFUSED

    with pytest.raises(Exception) as e:
        ray_backend._connect(fake_ray(refuse), "auto")
    assert_names_auth(e.value)


def write_campaign(folder: Path) -> Path:
    (folder / "briefs.csv").write_text("product,seed\nNight Roast,1\n", encoding="utf-8")
    path = folder / "c.toml"
    path.write_text(
        f'[campaign]\nname = "c"\nprofile = "{(PROFILES / "aurora-coffee").as_posix()}"\n'
        'template = "product-hero"\ncsv = "briefs.csv"\noutput_dir = "out"\n'
        '[defaults]\nduration = 0.25\nresolution = 64\naspect = "1:1"\n',
        encoding="utf-8",
    )
    return path


def run_campaign(folder: Path, address: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "brandstudio.cli", "campaign", "run", str(write_campaign(folder)),
         "--ray", address, "--quiet"],
        capture_output=True, text=True, timeout=180, env=env, cwd=folder,
    )  # fmt: skip


def test_token_mode_without_a_token_is_an_error_not_a_traceback(tmp_path):
    """Ray's own AuthenticationError (not a ConnectionError) used to escape as a traceback."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "RAY_AUTH_MODE": "token"}
    env.pop("RAY_AUTH_TOKEN", None), env.pop("RAY_AUTH_TOKEN_PATH", None)
    proc = run_campaign(tmp_path, "127.0.0.1:1", env)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "token authentication failed: RAY_AUTH_MODE is token, but no token was found" in " ".join(
        proc.stderr.split()
    )
    assert "export RAY_AUTH_MODE=token" in " ".join(proc.stderr.split())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_real_token_cluster_names_authentication_and_the_readme_fix_works(tmp_path):
    """``ray start --head`` with token auth; a client without the token gets the auth error, and
    with ``RAY_AUTH_MODE=token`` and the token (the README's steps) it connects."""
    ray_exe = shutil.which("ray")
    assert ray_exe is not None, "the ray command is missing: install the dev extra (ray is part of it)"
    short = Path(tempfile.mkdtemp(prefix="bsray", dir="/tmp"))  # Ray's socket paths must stay short
    home = tmp_path / "home"
    home.mkdir()
    token = "b" * 64
    base = {**os.environ, "RAY_TMPDIR": str(short), "HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0"}
    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        base.pop(k, None)
    head, port = _start_head(ray_exe, {**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}, short, tmp_path)
    try:
        proc = run_campaign(tmp_path, f"127.0.0.1:{port}", base)
        assert proc.returncode == 2, proc.stderr
        text = " ".join(proc.stderr.split())
        assert "Traceback" not in proc.stderr and "token authentication failed" in text, proc.stderr
        assert "InvalidAuthToken" not in proc.stderr  # Ray's twenty log lines are read, not shown
        connect = (
            "import ray; from brandstudio.distributed.ray_backend import _connect\n"
            f"_connect(ray, '127.0.0.1:{port}'); print(ray.cluster_resources().get('CPU')); ray.shutdown()"
        )
        ok = subprocess.run(
            [sys.executable, "-c", connect], capture_output=True, text=True, timeout=120,
            env={**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token},
        )  # fmt: skip
        assert ok.returncode == 0 and ok.stdout.strip() == "1.0", ok.stderr
    finally:
        _stop_head(head, short)


def _start_head(ray_exe: str, env: dict, tmpdir: Path, logdir: Path, tries: int = 3) -> tuple[subprocess.Popen, int]:
    """``ray start --head --block`` on a free port, once its GCS listens; the process and the port.

    Ray picks some of its own ports at random (the node manager's, the object manager's, its
    agents'); in a busy test run one of them can be taken, and the head exits at once. Then it is
    started again, on a new port (the log of each try is in ``logdir``, shown if all fail)."""
    logs = []
    for attempt in range(tries):
        port, log = free_port(), logdir / f"ray-head-{attempt}.log"
        tmpdir.mkdir(exist_ok=True)  # a failed try's cleanup removed it
        logs.append(log)
        with open(log, "wb") as out:
            head = subprocess.Popen(
                [ray_exe, "start", "--head", f"--port={port}", "--block", "--num-cpus=1", "--include-dashboard=false",
                 "--disable-usage-stats"],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 90
        while head.poll() is None and time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return head, port
            time.sleep(0.5)
        _stop_head(head, tmpdir)
    tails = "\n".join(f"--- {log.name}\n" + log.read_text(errors="replace")[-2000:] for log in logs)
    pytest.fail(f"the Ray head did not start in {tries} tries:\n{tails}")


def _stop_head(head: subprocess.Popen, tmpdir: Path) -> None:
    """Stop the head this test started (its process group, then any Ray process of its private
    temp dir, by pid): never `ray stop`, which stops every Ray process of the user."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            pass
        try:
            head.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        break
    left = subprocess.run(["pgrep", "-f", str(tmpdir)], capture_output=True, text=True).stdout.split()
    for pid in left:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(tmpdir, ignore_errors=True)
