"""Every connection is bounded: deadlines for the first byte, the head and the body, caps on
connections, header size and buffered request bytes, cheap rejection before the body is read,
quiet client disconnects, bounded x-request-id, TLS on the client port.

One server (`limited`) with short deadlines set through the environment; one TLS server set up
through the YAML's `server:` block.
"""

from __future__ import annotations

import datetime
import ipaddress
import resource
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.online.conftest import Server, start_server, stop_server, wait_for

KEY = "limits-test-key"
BODY = b'{"dataframe_split": {"columns": ["seconds"], "data": [[0.0]]}}'
FIRST_BYTE_S, HEADER_S, BODY_S = 3.0, 4.0, 3.0
MAX_CONNECTIONS = 300
MAX_BODY = 1024 * 1024
MAX_BUFFERED = 2_500_000


def _endpoint(path: Path, model: Path, extra: str = "") -> Path:
    path.write_text(f"""
name: limits
auth_mode: key
traffic: {{main: 100}}
{extra}
deployments:
  main:
    model: {model}
    request_settings: {{request_timeout_ms: 10000, max_concurrent_requests_per_instance: 2, max_queue_wait_ms: 8000}}
""")
    return path


@pytest.fixture(scope="module")
def tls_server(work_dir: Path, test_models: dict[str, Path]) -> Iterator[tuple[Server, Path]]:
    """TLS from the YAML's `server:` block; launched first, so that it starts while `limited` does."""
    folder = work_dir / "tls"
    folder.mkdir(exist_ok=True)
    certfile, _ = _self_signed(folder)
    endpoint = _endpoint(folder / "tls.yaml", test_models["sleeper"],
                         "server: {tls: {certfile: cert.pem, keyfile: key.pem}}")
    srv = start_server(endpoint, work_dir, {"SCORER_API_KEY": KEY}, wait_ready=False)
    yield srv, certfile
    stop_server(srv)


@pytest.fixture(scope="module")
def limited(work_dir: Path, test_models: dict[str, Path], tls_server: tuple[Server, Path]) -> Iterator[Server]:
    """Started with a low soft open-files limit, which the server must raise to the hard limit."""
    endpoint = _endpoint(work_dir / "limits.yaml", test_models["sleeper"])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        srv = start_server(endpoint, work_dir, {
            "SCORER_API_KEY": KEY, "SCORER_FIRST_BYTE_TIMEOUT_S": str(FIRST_BYTE_S),
            "SCORER_HEADER_TIMEOUT_S": str(HEADER_S), "SCORER_BODY_TIMEOUT_S": str(BODY_S),
            "SCORER_MAX_CONNECTIONS": str(MAX_CONNECTIONS), "SCORER_MAX_BODY_BYTES": str(MAX_BODY),
            "SCORER_MAX_BUFFERED_BYTES": str(MAX_BUFFERED)})
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    srv.headers = {"Authorization": f"Bearer {KEY}"}
    yield srv
    stop_server(srv)


def _addr(server: Server) -> tuple[str, int]:
    host, port = server.url.rsplit("//", 1)[1].split(":")
    return host, int(port)


def _open(server: Server, data: bytes = b"") -> socket.socket:
    s = socket.create_connection(_addr(server), timeout=10)
    if data:
        s.sendall(data)
    return s


def _head(length: int, key: str | None = KEY, path: str = "/score", extra: str = "") -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}{extra}"
            f"Content-Length: {length}\r\n\r\n").encode()


def _read_until_closed(s: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """(bytes read, whether the server closed the connection within `timeout`)."""
    s.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = s.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except ConnectionResetError:
        return data, True
    except TimeoutError:
        pass
    return data, False


def _is_open(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


def _metric(server: Server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _score(server: Server, content: bytes = BODY, headers: dict[str, str] | None = None) -> httpx.Response:
    sent = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", **(headers or {})}
    with httpx.Client(timeout=30) as c:  # a fresh connection per request
        return c.post(f"{server.url}/score", content=content, headers=sent)


def test_open_files_soft_limit_is_raised_to_the_hard_limit(limited: Server) -> None:
    limits = Path(f"/proc/{limited.proc.pid}/limits").read_text()
    line = next(ln for ln in limits.splitlines() if ln.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    assert soft == hard, line


def test_deadlines_close_idle_slowloris_and_stalled_connections(limited: Server) -> None:
    started = time.monotonic()
    idle = _open(limited)
    slow = _open(limited, b"POST /score HTTP/1.1\r\nHost: x\r\n")
    stalled = _open(limited, _head(1000) + b'{"dataframe')
    results: dict[str, tuple[bytes, bool, float]] = {}

    def trickle() -> None:  # slowloris: a header line every 0.5 s, for longer than header_timeout_s
        for i in range(40):
            try:
                slow.sendall(f"X-Slow-{i}: y\r\n".encode())
            except OSError:
                return
            time.sleep(0.5)

    feeder = threading.Thread(target=trickle, daemon=True)
    feeder.start()

    def watch(name: str, s: socket.socket) -> None:
        data, closed = _read_until_closed(s, 15)
        results[name] = (data, closed, time.monotonic() - started)

    watchers = [threading.Thread(target=watch, args=(n, s)) for n, s in
                (("idle", idle), ("slow", slow), ("stalled", stalled))]
    for t in watchers:
        t.start()
    for t in watchers:
        t.join(20)
    for s in (idle, slow, stalled):
        s.close()
    data, closed, took = results["idle"]
    assert closed and data == b"" and FIRST_BYTE_S - 0.5 <= took < FIRST_BYTE_S + 8, results["idle"]
    data, closed, took = results["slow"]
    assert closed and data.startswith(b"HTTP/1.1 408") and HEADER_S - 0.5 <= took < HEADER_S + 8, results["slow"]
    data, closed, took = results["stalled"]
    assert closed and data.startswith(b"HTTP/1.1 408") and b"connection: close" in data.lower(), results["stalled"]
    assert b"REQUEST_TIMEOUT" in data and BODY_S - 0.5 <= took < BODY_S + 8, results["stalled"]
    assert _score(limited).status_code == 200


def test_at_the_connection_cap_the_oldest_idle_connection_goes_not_the_new_one(limited: Server) -> None:
    evicted = _metric(limited, 'scorer_connections_closed_total{reason="evicted"}')
    crowd = [_open(limited) for _ in range(MAX_CONNECTIONS + 60)]
    slowloris = [_open(limited, b"POST /score HTTP/1.1\r\nHost: x\r\n") for _ in range(20)]
    try:
        answers = [_score(limited).status_code for _ in range(10)]  # each a new connection at the cap
        assert answers == [200] * 10
        assert _metric(limited, 'scorer_connections_closed_total{reason="evicted"}') - evicted >= 60
        assert not _is_open(crowd[0])  # the longest idle went first
        assert all(_is_open(s) for s in slowloris[-5:])  # the newest stay
        assert _metric(limited, "scorer_connections ") <= MAX_CONNECTIONS
    finally:
        for s in crowd + slowloris:
            s.close()


def test_refusals_are_decided_from_the_head_without_reading_the_body(limited: Server) -> None:
    # 401: only the head is sent; the answer comes at once and the connection is closed
    s = _open(limited, _head(500_000, key="wrong"))
    data, closed = _read_until_closed(s, 5)
    s.close()
    assert data.startswith(b"HTTP/1.1 401") and closed, data
    # a complete refused request keeps its connection, which is not read again for refusal_pause_s
    s = _open(limited, _head(len(BODY), key="wrong") + BODY)
    s.settimeout(5)
    first = s.recv(65536)
    sent = time.monotonic()
    s.sendall(_head(len(BODY), key="wrong") + BODY)
    second = s.recv(65536)
    paused = time.monotonic() - sent
    s.close()
    assert first.startswith(b"HTTP/1.1 401") and second.startswith(b"HTTP/1.1 401"), (first, second)
    assert b"connection: close" not in first.lower() and 0.7 <= paused < 4, paused
    # 429: fill the admission bound (2 in flight + 2 queued) with slow requests
    slow = b'{"dataframe_split": {"columns": ["seconds"], "data": [[1.0]]}}'
    threads = [threading.Thread(target=_score, args=(limited,), kwargs={"content": slow}) for _ in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: _metric(limited, "scorer_in_flight") + _metric(limited, "scorer_queue_depth") >= 4, 10, 0.05)
    s = _open(limited, _head(500_000))
    data, closed = _read_until_closed(s, 5)
    s.close()
    for t in threads:
        t.join(30)
    assert data.startswith(b"HTTP/1.1 429") and closed, data
    assert b"retry-after: 1" in data.lower() and b"REQUEST_LIMIT_EXCEEDED" in data


def test_buffered_request_bytes_are_capped_and_released(limited: Server) -> None:
    held = [_open(limited, _head(1_000_000) + b" " * 400_000) for _ in range(2)]
    try:
        wait_for(lambda: _metric(limited, "scorer_buffered_request_bytes") >= 2_000_000, 5, 0.05)
        r = _score(limited, content=b" " * 900_000 + BODY)
        assert r.status_code == 429, r.text
        assert r.headers["retry-after"] == "1" and r.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        assert "max_buffered_bytes" in r.json()["message"]
    finally:
        for s in held:
            s.close()
    wait_for(lambda: _metric(limited, "scorer_buffered_request_bytes") == 0, 10, 0.05)
    assert _score(limited).status_code == 200


def test_compressed_bodies_are_refused(limited: Server) -> None:
    import gzip

    r = _score(limited, content=gzip.compress(BODY), headers={"Content-Encoding": "gzip"})
    assert r.status_code == 415 and r.json()["error_code"] == "UNSUPPORTED_MEDIA_TYPE", r.text
    assert "Content-Encoding" in r.json()["message"]


def test_header_caps(limited: Server) -> None:
    many = {f"x-h-{i}": "v" for i in range(150)}
    r = _score(limited, headers=many)
    assert r.status_code == 431 and r.json()["error_code"] == "BAD_REQUEST", r.text
    r = _score(limited, headers={"x-big": "v" * 70_000})
    assert r.status_code == 431, r.text
    assert _score(limited).status_code == 200


def test_request_id_is_bounded(limited: Server) -> None:
    long_id = "r" * 500
    r = _score(limited, headers={"x-request-id": long_id})
    assert r.status_code == 200 and r.headers["x-request-id"] == long_id[:128]
    r = _score(limited, headers={"x-request-id": "short-id"})
    assert r.headers["x-request-id"] == "short-id"


def test_a_client_disconnect_mid_body_is_one_info_line(limited: Server) -> None:
    before = len(limited.logs())
    for _ in range(3):
        s = _open(limited, _head(1000) + b'{"dataframe_split"')
        time.sleep(0.3)
        s.close()
    time.sleep(1.0)
    new = limited.logs()[before:]
    assert "unexpected error" not in new and "Traceback" not in new and "ERROR" not in new, new
    lines = [ln for ln in new.splitlines() if "closed the connection" in ln or "status=499" in ln]
    assert len(lines) == 3 and all(" INFO " in ln and "status=499" in ln for ln in lines), new


# -- TLS -----------------------------------------------------------------------------------------
def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


def test_tls_from_the_server_block(tls_server: tuple[Server, Path]) -> None:
    srv, certfile = tls_server
    url = srv.url.replace("http://", "https://")
    trust = ssl.create_default_context(cafile=str(certfile))

    def ready() -> bool:
        if srv.proc.poll() is not None:
            raise AssertionError(srv.logs())
        try:
            return httpx.get(f"{url}/ready", verify=trust, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, 120, 0.2)
    r = httpx.post(f"{url}/score", content=BODY, verify=trust, timeout=30,
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert r.status_code == 200 and r.json() == {"predictions": [0.0]}, r.text
    with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port gets no answer
        httpx.get(f"{srv.url}/ping", timeout=5)
    assert f"ready on {url}" in srv.out.read_text()


def test_server_block_defaults_and_environment_overrides() -> None:
    from scorer.spec.server import ServerSettings
    from serving.limits import Limits

    s = ServerSettings.model_validate({"header_timeout_s": 7, "tls": {"certfile": "/c.pem", "keyfile": "/k.pem"}})
    assert (s.first_byte_timeout_s, s.body_timeout_s, s.max_connections) == (5, 30, 10000)
    assert (s.max_body_bytes, s.max_buffered_bytes, s.max_token_ttl_s) == (10485760, 268435456, 86400)
    assert (s.max_header_bytes, s.max_headers, s.refusal_pause_s) == (65536, 100, 1.0)
    lim = Limits.resolve(s, {"SCORER_HEADER_TIMEOUT_S": "2.5", "SCORER_MAX_CONNECTIONS": "50"})
    assert (lim.header_timeout_s, lim.max_connections, lim.first_byte_timeout_s) == (2.5, 50, 5)
    assert str(lim.certfile) == "/c.pem"
    assert Limits.resolve(None, {}).max_buffered_bytes == 268435456
    with pytest.raises(ValueError, match="SCORER_MAX_CONNECTIONS"):
        Limits.resolve(s, {"SCORER_MAX_CONNECTIONS": "-1"})
    assert Limits.resolve(s, {"SCORER_REFUSAL_PAUSE_S": "0"}).refusal_pause_s == 0
    with pytest.raises(ValueError, match="both"):
        lim.with_tls("/only-cert.pem", None)
    with pytest.raises(ValueError):
        ServerSettings.model_validate({"first_byte_timeout": 1})
