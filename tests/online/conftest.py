"""One real `scorer serve` per session (plus a token-auth one and `mlflow models serve` for parity).

The main server's deployments cover every case: blue/green demo models with traffic 70/30, and at
0% traffic a mixed-type pyfunc, a sleeping model, a raising model, a working scoring script, a
scoring script whose init() crashes, and a deployment with fast probes for the probe tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from scorer.bench.processes import free_port

REPO = Path(__file__).resolve().parents[2]
ASSETS = Path(__file__).resolve().parent / "assets"
API_KEYS = ("key-one-primary", "key-two-secondary")
ADMIN_KEY = "admin-key-for-tests"
TOKEN_SECRET = "token-secret-for-tests"
MAX_BODY = 1024 * 1024


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    out: Path
    headers: dict[str, str] = field(default_factory=dict)

    def client(self, **kw: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30, **kw)  # type: ignore[arg-type]

    def logs(self) -> str:
        return self.out.read_text(errors="replace") + self.log.read_text(errors="replace")


def start_server(endpoint: Path, workdir: Path, env_extra: dict[str, str], wait_ready: bool = True,
                 timeout: float = 120, deployments: Sequence[Path] = ()) -> Server:
    port = free_port()
    env = {**os.environ, **env_extra}
    out, log = workdir / f"serve-{port}.out", workdir / f"serve-{port}.err"
    proc = subprocess.Popen(
        [sys.executable, "-m", "scorer.cli", "serve", str(endpoint), *map(str, deployments), "--port", str(port)],
        cwd=workdir, env=env, stdout=out.open("wb"), stderr=log.open("wb"))
    server = Server(f"http://127.0.0.1:{port}", proc, log, out)
    deadline = time.monotonic() + timeout
    while wait_ready and time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"scorer serve exited with {proc.returncode}:\n{server.logs()}")
        try:
            if httpx.get(f"{server.url}/ready", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    if wait_ready:
        stop_server(server)
        raise RuntimeError(f"scorer serve not ready in {timeout}s:\n{server.logs()}")
    return server


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(5)


def _save_code_model(name: str, root: Path, example: object, with_example: bool = True) -> Path:
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    path = root / name
    mlflow.pyfunc.save_model(str(path), python_model=str(ASSETS / f"{name}.py"), signature=infer_signature(example),
                             input_example=example if with_example else None)
    return path


@pytest.fixture(scope="session")
def work_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="scorer-online-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def test_models(work_dir: Path) -> dict[str, Path]:
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import infer_signature

    root = work_dir / "models"
    mixed_example = pd.DataFrame({"x": [0.25, 0.75], "name": ["a", "b"]})
    mixed = root / "mixed"
    mlflow.pyfunc.save_model(
        str(mixed), python_model=str(ASSETS / "mixed.py"), input_example=(mixed_example, {"scale": 1.0}),
        signature=infer_signature(mixed_example, None, params={"scale": 1.0}))
    return {
        "mixed": mixed,
        "sleeper": _save_code_model("sleeper", root, pd.DataFrame({"seconds": [0.0]})),
        "raiser": _save_code_model("raiser", root, pd.DataFrame({"x": [1.0]}), with_example=False),
    }


def _yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def demo_blue_path(demo_registry: str) -> Path:
    from scorer.models import resolve

    return resolve(f"models:/{demo_registry}@blue").local_path


@pytest.fixture(scope="session")
def server(work_dir: Path, demo_registry: str, test_models: dict[str, Path]) -> Iterator[Server]:
    rs = "request_settings: {request_timeout_ms: %d, max_concurrent_requests_per_instance: %d, max_queue_wait_ms: %d}"
    endpoint = _yaml(work_dir / "endpoint.yaml", f"""
name: tests
auth_mode: key
traffic: {{blue: 70, green: 30}}
deployments:
  blue:
    model: models:/{demo_registry}@blue
    instance_count: 2
    {rs % (5000, 4, 500)}
  green:
    model: models:/{demo_registry}@green
    {rs % (5000, 4, 500)}
  mixed:
    model: {test_models['mixed']}
  sleeper:
    model: {test_models['sleeper']}
    instance_count: 2
    request_settings: {{request_timeout_ms: 1000, max_concurrent_requests_per_instance: 1, max_queue_wait_ms: 300,
                        kill_after_ms: 500}}
  raiser:
    model: {test_models['raiser']}
  script:
    code_configuration: {{code: {ASSETS / 'script_ok'}, scoring_script: score.py}}
    environment_variables: {{GREETING: hello}}
  crasher:
    code_configuration: {{code: {ASSETS / 'script_crash'}, scoring_script: score.py}}
  probed:
    model: models:/{demo_registry}@blue
    liveness_probe: {{initial_delay: 0.5, period: 0.5, timeout: 0.5, failure_threshold: 4}}
    readiness_probe: {{initial_delay: 0.5, period: 0.5, timeout: 0.5, failure_threshold: 1}}
""")
    srv = start_server(endpoint, work_dir, {
        "SCORER_API_KEY": ",".join(API_KEYS), "SCORER_ADMIN_KEY": ADMIN_KEY,
        "SCORER_MAX_BODY_BYTES": str(MAX_BODY)})
    srv.headers = {"Authorization": f"Bearer {API_KEYS[0]}"}
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


@pytest.fixture(scope="session")
def token_server(work_dir: Path, demo_blue_path: Path) -> Iterator[Server]:
    """auth_mode token, all traffic 0: unpinned requests are 404, pinned ones work."""
    endpoint = _yaml(work_dir / "zero.yaml", f"""
name: zero
auth_mode: aml_token
traffic: {{only: 0}}
deployments:
  only:
    model: {demo_blue_path}
""")
    srv = start_server(endpoint, work_dir, {"SCORER_TOKEN_SECRET": TOKEN_SECRET, "SCORER_API_KEY": ""})
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def mlflow_servers(demo_blue_path: Path, test_models: dict[str, Path], work_dir: Path) -> Iterator[dict[str, str]]:
    """`mlflow models serve --env-manager local` for the demo LR, the mixed-type and the raising model."""
    mlflow_cli = str(Path(sys.executable).with_name("mlflow"))
    procs, urls = [], {}
    for name, path in (("blue", demo_blue_path), ("mixed", test_models["mixed"]), ("raiser", test_models["raiser"])):
        port = free_port()
        log = (work_dir / f"mlflow-{name}.log").open("wb")
        procs.append(subprocess.Popen(
            [mlflow_cli, "models", "serve", "-m", str(path), "--env-manager", "local", "-p", str(port),
             "-h", "127.0.0.1"], cwd=work_dir, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}))
        urls[name] = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        for url in urls.values():
            while True:
                try:
                    if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("mlflow models serve did not start")
                time.sleep(0.3)
        yield urls
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def admin(server: Server) -> dict:  # type: ignore[type-arg]
    r = httpx.get(f"{server.url}/admin/endpoint", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def wait_for(predicate, timeout: float = 30, interval: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s")


def admin_put(server: Server, path: str, body: object) -> httpx.Response:
    return httpx.put(f"{server.url}{path}", json=body, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)


def ops_yaml(path: Path, registry: str, picky: Path, blue: str = "@blue", extra: str = "") -> Path:
    """blue (batching on) / green at 100/0 with green mirrored at 50%, and `picky` (batching on)."""
    return _yaml(path, f"""
name: ops
auth_mode: key
traffic: {{blue: 100, green: 0}}
mirror_traffic: {{green: 50}}
deployments:
  blue:
    model: models:/{registry}{blue}
    request_settings: {{max_concurrent_requests_per_instance: 32, max_queue_wait_ms: 3000}}
    batching: {{max_batch_size: 8, max_batch_wait_ms: 5}}
  green:
    model: models:/{registry}@green
    request_settings: {{max_concurrent_requests_per_instance: 32, max_queue_wait_ms: 3000}}
  picky:
    model: {picky}
    request_settings: {{max_concurrent_requests_per_instance: 16, max_queue_wait_ms: 2000}}
    batching: {{max_batch_size: 16, max_batch_wait_ms: 50}}
{extra}""")


@pytest.fixture(scope="session")
def picky_model(work_dir: Path) -> Path:
    import pandas as pd

    return _save_code_model("picky", work_dir / "models", pd.DataFrame({"x": [1.0]}))


@pytest.fixture(scope="session")
def ops_server(work_dir: Path, demo_registry: str, picky_model: Path) -> Iterator[Server]:
    """A server the admin, mirror and batching tests may change (they put back what they change)."""
    srv = start_server(ops_yaml(work_dir / "ops.yaml", demo_registry, picky_model), work_dir, {
        "SCORER_API_KEY": API_KEYS[0], "SCORER_ADMIN_KEY": ADMIN_KEY})
    srv.headers = {"Authorization": f"Bearer {API_KEYS[0]}"}
    yield srv
    stop_server(srv)
