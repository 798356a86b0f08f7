"""Run the shell blocks of README.md and docs/*.md that are marked for newcomers (see blocks.py for
the marker), each in a fresh copy of the repository's runnable state, so the docs cannot drift.

The copy has `configs/`, `examples/`, the Makefile and a `.venv/` that points at the interpreter
running the tests (so `.venv/bin/scorer` in the docs is CI's venv), no `.scorer/` (keys and the
model cache start empty, as on a fresh clone) and the session's registry (tests/conftest.py) in
`MLFLOW_TRACKING_URI`. `.venv/bin` is not on PATH: a bare `scorer` or `python` in a block fails.
Port 8000 of a server block and its clients becomes a free port; `curl` fails on a 4xx or 5xx.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.docs.blocks import Block, Group, all_groups

RUN_TIMEOUT_S = 240.0
READY_TIMEOUT_S = 180.0


def _params() -> list[object]:
    return [pytest.param(g, id=g.first.where, marks=[pytest.mark.soak] if g.soak else [])
            for g in all_groups()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_port(text: str, old: int, new: int) -> str:
    """The doc's port (8000) becomes a free one: `--port N`, `HOST:N`."""
    return re.sub(rf"(--port[ =]|127\.0\.0\.1:|localhost:){old}\b", rf"\g<1>{new}", text)


def _bash(script: str) -> list[str]:
    return ["bash", "-e", "-o", "pipefail", "-c", script]


def _check_output(block: Block, output: str) -> None:
    """What every block's output must (not) show: the console block's lines; no traceback; no
    warning about the project's own `$schema`."""
    printed = {line.rstrip() for line in output.splitlines()}
    missing = [line for line in block.expected_output() if line not in printed]
    assert not missing, f"{block.where}: the doc shows lines the command did not print: {missing}\n{output}"
    assert "Traceback (most recent call last)" not in output, f"{block.where}:\n{output}"
    assert "$schema" not in output, f"{block.where}: warns about the project's own $schema:\n{output}"


def _run(block: Block, root: Path, env: dict[str, str], script: str) -> None:
    started = time.monotonic()
    try:
        done = subprocess.run(_bash(script), cwd=root, env=env, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S, start_new_session=True)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.where}: still running after {RUN_TIMEOUT_S:.0f}s:\n{exc.stdout!r}\n{exc.stderr!r}")
    output = done.stdout + done.stderr
    assert done.returncode == 0, (f"{block.where}: exit {done.returncode} after {time.monotonic() - started:.1f}s "
                                  f"running\n{script}\n--- output ---\n{output}")
    _check_output(block, output)


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, where: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{where}: the server exited ({proc.returncode}) before it was ready:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"{where}: not ready on port {port} after {READY_TIMEOUT_S:.0f}s:\n{log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the block's process group (the shell, the server, its replicas), then SIGKILL."""
    for sig, wait_s in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _serve(group: Group, root: Path, env: dict[str, str]) -> None:
    server = group.first
    named = re.search(r"--port[ =](\d+)", server.script())
    assert named, f"{server.where}: a server block names its port (--port 8000)"
    port = _free_port()
    log = root / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(_bash(_with_port(server.script(), int(named[1]), port)), cwd=root, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(proc, port, log, server.where)
        assert group.clients, f"{server.where}: a server block needs a client block after it"
        for client in group.clients:
            _run(client, root, env, _with_port(client.script(), int(named[1]), port))
    finally:
        _stop(proc)
    _check_output(server, log.read_text())


@pytest.mark.parametrize("group", _params())
def test_doc_block(group: Group, registry: str, sandbox: tuple[Path, dict[str, str]]) -> None:
    root, env = sandbox
    if shutil.which("curl") is None and any("curl" in b.text for b in [group.first, *group.clients]):
        pytest.skip("curl is not installed")
    if group.first.kind == "server":
        _serve(group, root, env)
    else:
        _run(group.first, root, env, group.first.script())
