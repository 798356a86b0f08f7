"""Slow and idle clients against one `scorer serve` with default limits (issue items 5, 6, 8):

1. 2,000 idle connections and 1,000 slowloris connections (a header line every 2 s) held while a
   fresh keyed request goes every 0.5 s: how many stay open, how many keyed requests succeed.
2. 60 keyed clients that send 9 MB of a 10 MB body and stall: what they add to the router's memory,
   how they are answered, and whether the buffered-bytes gauge returns to 0.
3. 100 clients that disconnect mid-body: how many log lines that costs.

    python benchmarks/slow_clients.py            # about 80 s
    PYTHONPATH=/old/checkout python benchmarks/slow_clients.py --label before

Results: benchmarks/results/slow_clients[-LABEL].json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from flood import save_model  # noqa: E402

BODY = b'{"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}'


def _is_open(s: socket.socket) -> bool:
    """Still open from the server's side (an answer followed by a close counts as closed)."""
    s.setblocking(False)
    try:
        while s.recv(65536):
            pass
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _gauge(url: str, name: str) -> float | None:
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    values = [float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(name + " ")]
    return values[0] if values else None


def held_connections(url: str, addr: tuple[str, int], key: str, seconds: float = 14) -> dict[str, Any]:
    import httpx

    idle = [socket.create_connection(addr) for _ in range(2000)]
    slow = [socket.create_connection(addr) for _ in range(1000)]
    for s in slow:
        s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\n")
    stop = threading.Event()

    def trickle() -> None:
        i = 0
        while not stop.wait(2.0):
            i += 1
            for s in slow:
                with contextlib.suppress(OSError):
                    s.sendall(f"X-Slow-{i}: y\r\n".encode())

    feeder = threading.Thread(target=trickle, daemon=True)
    feeder.start()
    started = time.monotonic()
    ok = failed = 0
    snapshots = []
    next_snap = [7.0, 13.0]
    while time.monotonic() - started < seconds:
        try:
            r = httpx.post(f"{url}/score", content=BODY, timeout=10, headers={
                "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            ok += r.status_code == 200
            failed += r.status_code != 200
        except httpx.HTTPError:
            failed += 1
        if next_snap and time.monotonic() - started >= next_snap[0]:
            snapshots.append({"at_s": next_snap.pop(0), "idle_open": sum(map(_is_open, idle)),
                              "slowloris_open": sum(map(_is_open, slow))})
        time.sleep(0.5)
    stop.set()
    feeder.join(5)
    for s in idle + slow:
        s.close()
    return {"keyed_ok": ok, "keyed_failed": failed, "open": snapshots}


def held_bodies(url: str, addr: tuple[str, int], key: str, pid: int, wait_s: float = 36) -> dict[str, Any]:
    chunk = b" " * (9 * 1024 * 1024)
    head = (f"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {10 * 1024 * 1024}\r\n\r\n").encode()
    rss_before = _rss_mb(pid)
    socks: list[socket.socket] = []
    answers: dict[str, int] = {}

    def send(s: socket.socket) -> None:
        try:
            s.sendall(head)
            s.sendall(chunk)
        except OSError:
            pass

    for _ in range(60):
        s = socket.create_connection(addr)
        socks.append(s)
    threads = [threading.Thread(target=send, args=(s,)) for s in socks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    time.sleep(2)
    rss_held = _rss_mb(pid)
    gauge_held = _gauge(url, "scorer_buffered_request_bytes")
    deadline = time.monotonic() + wait_s
    pending = list(socks)
    first_answer_s: dict[str, float] = {}
    started = time.monotonic()
    while pending and time.monotonic() < deadline:
        for s in list(pending):
            s.setblocking(False)
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            status = data[9:12].decode() if data.startswith(b"HTTP/1.1") else "closed"
            answers[status] = answers.get(status, 0) + 1
            first_answer_s.setdefault(status, time.monotonic() - started)
            pending.remove(s)
        time.sleep(0.2)
    answers["no answer"] = len(pending)
    rss_after = _rss_mb(pid)
    for s in socks:
        s.close()
    time.sleep(1)
    return {"rss_before_mb": round(rss_before), "rss_held_mb": round(rss_held),
            "added_mb": round(rss_held - rss_before),
            "buffered_gauge_held": gauge_held, "answers": answers,
            "buffered_gauge_after_cut": _gauge(url, "scorer_buffered_request_bytes"),
            "rss_after_answers_mb": round(rss_after)}


def disconnects(addr: tuple[str, int], key: str, log: Path) -> dict[str, Any]:
    before = log.read_text(errors="replace").splitlines()
    head = (f"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n").encode()
    for _ in range(100):
        s = socket.create_connection(addr)
        s.sendall(head + b'{"dataframe_split"')
        time.sleep(0.02)
        s.close()
    time.sleep(3)
    new = log.read_text(errors="replace").splitlines()[len(before):]
    return {"lines": len(new), "error_lines": sum(" ERROR " in ln for ln in new),
            "tracebacks": sum(ln.startswith("Traceback") for ln in new)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--label", default="")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = p.parse_args(argv)
    from scorer.bench.processes import start_scorer

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["FLOOD_SLEEP_MS"] = "1"
        model = save_model(folder)
        endpoint = folder / "slow.yaml"
        endpoint.write_text("name: slow\nauth_mode: key\ntraffic: {main: 100}\ndeployments:\n  main:\n"
                            f"    model: {model}\n    request_settings: {{max_concurrent_requests_per_instance: 4}}\n")
        srv = start_scorer([str(endpoint)], folder)
        try:
            srv.wait_ready("/ready")
            key = srv.env["SCORER_API_KEY"]
            host, port = srv.url.rsplit("//", 1)[1].split(":")
            addr = (host, int(port))
            results["held_connections"] = held_connections(srv.url, addr, key)
            print("held connections:", results["held_connections"], flush=True)
            results["held_bodies"] = held_bodies(srv.url, addr, key, srv.process.pid)
            print("held bodies:", results["held_bodies"], flush=True)
            results["disconnects"] = disconnects(addr, key, srv.log)
            print("100 disconnects:", results["disconnects"], flush=True)
        finally:
            srv.stop()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"slow_clients{'-' + args.label if args.label else ''}.json").write_text(
        json.dumps({"label": args.label, **results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
