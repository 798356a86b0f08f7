"""A real multi-"host" Ray cluster on one machine: one network namespace per node, joined by veth
pairs to a bridge that lives in a namespace of its own (the root namespace is never touched).
Every node but the head also runs in its own mount namespace with a private tmpfs on /tmp and a
private working directory, so nothing reaches it through the driver's /tmp.

Traffic stays on the addresses of a random private /24 made here (and 127.0.0.1 inside each
namespace). Teardown kills only the processes inside these namespaces (never `ray stop`), then
deletes the namespaces, which takes the veths and the bridge with them."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RAY_PORT = 6379

# Short health checks, for test clusters only: a lost node is declared dead in about 2 s, not 30 s.
HEALTH_ENV = {
    "RAY_health_check_initial_delay_ms": "0",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}
TELEMETRY_OFF = {"RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}


def _ip(*args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=timeout)


def unavailable() -> str | None:
    """Why namespaces cannot be used here (None when they can): needs root and `ip netns add`."""
    if os.name != "posix" or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "multihost tests need root (network and mount namespaces)"
    for tool in ("ip", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"multihost tests need `{tool}`"
    probe = f"scmhp{secrets.token_hex(3)}"
    try:
        made = _ip("netns", "add", probe, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns add` failed: {exc}"
    if made.returncode != 0:
        return f"`ip netns add` is not allowed here: {made.stderr.strip()[:200]}"
    _ip("netns", "del", probe, check=False)
    try:
        mnt = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none /tmp"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`unshare -m` failed: {exc}"
    if mnt.returncode != 0:
        return f"mount namespaces are not allowed here: {mnt.stderr.strip()[:200]}"
    return None


def free_subnet() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that overlaps no address or route of this machine."""
    used = []
    for args in (("-4", "-o", "addr"), ("-4", "route")):
        for word in _ip(*args).stdout.split():
            with contextlib.suppress(ValueError):
                used.append(ipaddress.ip_network(word, strict=False))
    for _ in range(100):
        net = ipaddress.ip_network(f"10.{secrets.randbelow(200) + 40}.{secrets.randbelow(254) + 1}.0/24")
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise RuntimeError("no free 10.x.y.0/24 found")


def shared_root() -> str:
    """Where the folder every node sees lives: not /tmp, which is private on every node but the head."""
    if os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK):
        return "/var/tmp"
    (REPO / "build").mkdir(exist_ok=True)
    return str(REPO / "build")


@dataclass
class Node:
    name: str  # network namespace
    ip: str
    private: bool  # own mount namespace with a private /tmp and working directory


@dataclass
class NetnsCluster:
    """`nodes` namespaces (node 1 is the Ray head). Use as a context manager, or call close()."""

    nodes_wanted: int = 2
    shared: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="scmh-", dir=shared_root())))
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    nodes: list[Node] = field(default_factory=list)
    hub: str = ""
    subnet: ipaddress.IPv4Network | None = None
    timings: dict[str, float] = field(default_factory=dict)
    _closed: bool = False

    # --- network ----------------------------------------------------------------------------

    def up(self) -> NetnsCluster:
        t0 = time.monotonic()
        self.subnet = free_subnet()
        hosts = list(self.subnet.hosts())
        self.hub = f"scmh-{self.tag}-hub"
        _ip("netns", "add", self.hub)
        br = f"scbr{self.tag}"
        self._in(self.hub, "ip", "link", "add", br, "type", "bridge")
        self._in(self.hub, "ip", "link", "set", br, "up")
        self._in(self.hub, "ip", "link", "set", "lo", "up")
        for i in range(1, self.nodes_wanted + 1):
            ns = f"scmh-{self.tag}-n{i}"
            _ip("netns", "add", ns)
            self.nodes.append(Node(ns, str(hosts[i - 1]), private=i > 1))
            near, far = f"v{self.tag}h{i}", f"v{self.tag}n{i}"
            # both ends are made inside the hub, then one end moves: the root namespace never holds them
            self._in(self.hub, "ip", "link", "add", near, "type", "veth", "peer", "name", far)
            self._in(self.hub, "ip", "link", "set", far, "netns", ns)
            self._in(self.hub, "ip", "link", "set", near, "master", br)
            self._in(self.hub, "ip", "link", "set", near, "up")
            self._in(ns, "ip", "link", "set", "lo", "up")
            self._in(ns, "ip", "addr", "add", f"{hosts[i - 1]}/24", "dev", far)
            self._in(ns, "ip", "link", "set", far, "up")
        self.timings["network_s"] = round(time.monotonic() - t0, 3)
        return self

    @staticmethod
    def _in(ns: str, *cmd: str, timeout: float = 20) -> None:
        subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True, capture_output=True, timeout=timeout)

    @property
    def head(self) -> Node:
        return self.nodes[0]

    @property
    def address(self) -> str:
        return f"{self.head.ip}:{RAY_PORT}"

    # --- Ray ----------------------------------------------------------------------------------

    @property
    def token_path(self) -> Path:
        return self.shared / "ray-token"

    def env(self, token: bool = True) -> dict[str, str]:
        """Environment for head, workers and drivers: this cluster's own token, short health checks."""
        home = self.shared / "home"
        home.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(TELEMETRY_OFF)
        env.update(HEALTH_ENV)
        # a private HOME: no ~/.ray/auth_token of this machine's user is picked up
        env.update({"HOME": str(home), "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
                    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"})
        if token:
            env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path)})
        else:
            env["RAY_AUTH_MODE"] = "disabled"
        return env

    def node_command(self, node: Node, cmd: list[str]) -> list[str]:
        """`cmd` inside the node's network namespace (and, for a private node, its mount namespace)."""
        if not node.private:
            return ["ip", "netns", "exec", node.name, *cmd]
        quoted = " ".join(_quote(c) for c in cmd)
        # The code and the interpreter must stay visible when they live under /tmp (a CI clone may):
        # bind them aside, lay the private tmpfs over /tmp, then bind them back at the same paths.
        keep = sorted({str(p) for p in (REPO, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve())
                       if str(p) == "/tmp" or str(p).startswith("/tmp/")})
        before, after = [], []
        for i, path in enumerate(keep):
            aside = self.shared / f"keep-{node.name}-{i}"
            before.append(f"mkdir -p {_quote(str(aside))} && mount --bind {_quote(path)} {_quote(str(aside))}")
            after.append(f"mkdir -p {_quote(path)} && mount --bind {_quote(str(aside))} {_quote(path)}")
        steps = [*before, "mount -t tmpfs -o size=1g scmh /tmp", *after, "mkdir -p /tmp/wd", "cd /tmp/wd",
                 f"exec {quoted}"]
        script = " && ".join(steps)
        return ["ip", "netns", "exec", node.name, "unshare", "-m", "--propagation", "private",
                "sh", "-c", script]

    def start_ray(self, cpus: int = 1, timeout: float = 180, head_cpus: int | None = None) -> NetnsCluster:
        """Head on node 1, workers on the others (each a separate --temp-dir); returns when all are alive.
        `head_cpus=0` keeps every actor that asks for a CPU off the head (all replicas on other hosts)."""
        self.token_path.write_text(secrets.token_hex(32))
        self.token_path.chmod(0o600)
        common = ["--num-cpus", str(cpus), "--object-store-memory", str(100 << 20), "--disable-usage-stats"]
        head_common = common if head_cpus is None else ["--num-cpus", str(head_cpus), *common[2:]]
        t0 = time.monotonic()
        head_tmp = Path(tempfile.mkdtemp(prefix=f"scmh{self.tag}", dir="/tmp"))
        self._cleanup_dirs = [head_tmp]
        ray = str(BIN / "ray")
        self._run(self.head, [ray, "start", "--head", f"--node-ip-address={self.head.ip}", f"--port={RAY_PORT}",
                              f"--temp-dir={head_tmp}", "--include-dashboard=false", *head_common], timeout)
        self.timings["head_s"] = round(time.monotonic() - t0, 3)
        for node in self.nodes[1:]:
            self._run(node, [ray, "start", f"--address={self.address}", f"--node-ip-address={node.ip}",
                             "--temp-dir=/tmp/ray", *common], timeout)
        self.wait_nodes(len(self.nodes), timeout)
        self.timings["ray_up_s"] = round(time.monotonic() - t0, 3)
        return self

    def _run(self, node: Node, cmd: list[str], timeout: float) -> None:
        done = subprocess.run(self.node_command(node, cmd), env=self.env(), capture_output=True, text=True,
                              timeout=timeout, cwd=str(self.shared))
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:3])} on {node.name} failed ({done.returncode}):\n"
                               f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")

    def python(self, code: str, node: Node | None = None, token: bool = True, timeout: float = 60,
               ) -> subprocess.CompletedProcess:
        """Run Python code in a node's namespaces (default: the head's) as a Ray driver would."""
        node = node or self.head
        return subprocess.run(self.node_command(node, [sys.executable, "-c", code]), env=self.env(token),
                              capture_output=True, text=True, timeout=timeout, cwd=str(REPO))

    def wait_nodes(self, count: int, timeout: float) -> None:
        code = (
            "import time, ray\n"
            f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
            f"deadline = time.monotonic() + {timeout}\n"
            f"while sum(n['Alive'] for n in ray.nodes()) < {count} and time.monotonic() < deadline:\n"
            "    time.sleep(0.2)\n"
            "print(sum(n['Alive'] for n in ray.nodes()))\n"
        )
        done = self.python(code, timeout=timeout + 30)
        alive = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
        if alive != [str(count)]:
            raise RuntimeError(f"{count} Ray nodes not alive within {timeout:.0f} s: {done.stdout[-500:]}"
                               f"{done.stderr[-2000:]}")

    def kill_node(self, node: Node) -> None:
        """Kill every process of one node (its namespace), SIGKILL: a machine that went away."""
        for pid in self.pids(node.name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def set_link(self, node: Node, up: bool) -> None:
        """Bring a node's only link (its veth end) down or up: the host drops off the network."""
        i = self.nodes.index(node) + 1
        self._in(node.name, "ip", "link", "set", f"v{self.tag}n{i}", "up" if up else "down")

    def restart_node(self, node: Node, timeout: float = 180) -> None:
        """Kill what is left of a worker node and start Ray on it again: it joins as a new Ray node."""
        self.kill_node(node)
        deadline = time.monotonic() + 20
        while self.pids(node.name) and time.monotonic() < deadline:
            time.sleep(0.1)
        common = ["--num-cpus", "1", "--object-store-memory", str(100 << 20), "--disable-usage-stats"]
        self._run(node, [str(BIN / "ray"), "start", f"--address={self.address}", f"--node-ip-address={node.ip}",
                         "--temp-dir=/tmp/ray", *common], timeout)
        self.wait_nodes(len(self.nodes), timeout)

    # --- teardown -----------------------------------------------------------------------------

    @staticmethod
    def pids(ns: str) -> list[int]:
        done = _ip("netns", "pids", ns, check=False)
        return [int(p) for p in done.stdout.split() if p.isdigit()]

    def close(self) -> None:
        """Kill this cluster's processes (only those in its namespaces), delete namespaces and folders."""
        if self._closed:
            return
        self._closed = True
        spaces = [n.name for n in self.nodes] + ([self.hub] if self.hub else [])
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            for ns in spaces:
                for pid in self.pids(ns):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(self.pids(ns) for ns in spaces):
                time.sleep(0.1)
        for ns in spaces:
            _ip("netns", "del", ns, check=False)
        for d in [*getattr(self, "_cleanup_dirs", []), self.shared]:
            shutil.rmtree(d, ignore_errors=True)

    def __enter__(self) -> NetnsCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


@contextlib.contextmanager
def where_model(prefix: str, python_model: Any) -> Iterator[str]:
    """`python_model` saved under the driver's /tmp (one float column `x`, string answers): only what
    scorer ships through Ray reaches a node with a private /tmp. Removed afterwards."""
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    frame = pd.DataFrame({"x": np.arange(3, dtype=float)})
    mlflow.pyfunc.save_model(str(root / "where"), python_model=python_model,
                             signature=infer_signature(frame, np.array(["10.0.0.1"] * 3)))
    try:
        yield str(root / "where")
    finally:
        shutil.rmtree(root, ignore_errors=True)
