"""Servers started for a benchmark run: scorer for a YAML target, `mlflow models serve` to compare.

Every process is started in its own session and stopped (SIGTERM, then SIGKILL) by `stop()`,
which `scorer bench` calls in a `finally`, so Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    url: str
    path: str  # the scoring route
    process: subprocess.Popen[bytes]
    log: Path
    headers: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def wait_ready(self, probe: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode} before it was ready; "
                                   f"see {self.log}")
            try:
                if httpx.get(self.url + probe, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} was not ready after {timeout:.0f}s; see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def _spawn(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env},
                                start_new_session=True)


def start_scorer(files: list[str], out_dir: Path) -> Server:
    """`scorer serve` on 127.0.0.1 with a fresh API key for this run."""
    port = free_port()
    key = secrets.token_urlsafe(24)
    env = {"SCORER_API_KEY": key}
    cmd = [sys.executable, "-m", "scorer.cli", "serve", *files, "--host", "127.0.0.1", "--port", str(port)]
    proc = _spawn(cmd, out_dir / "scorer-serve.log", env)
    return Server("scorer", f"http://127.0.0.1:{port}", "/score", proc, out_dir / "scorer-serve.log",
                  {"Authorization": f"Bearer {key}"}, env)


def start_mlflow(model_dir: Path, workers: int, out_dir: Path) -> Server:
    """`mlflow models serve --env-manager local` for the same model folder, `workers` processes."""
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir), "--env-manager", "local",
           "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    # mlflow runs `uvicorn` by name: the interpreter's own bin folder must come first on PATH.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    proc = _spawn(cmd, out_dir / "mlflow-serve.log", {"PATH": path})
    return Server("mlflow", f"http://127.0.0.1:{port}", "/invocations", proc, out_dir / "mlflow-serve.log")
