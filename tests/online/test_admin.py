"""The admin API: the endpoint document, traffic and mirror changes validated like the YAML and
applied atomically, the `scorer traffic` CLI, and traffic flips under load with no failure."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import httpx

from tests.online.conftest import ADMIN_KEY, REPO, admin, admin_put
from tests.online.data import split_body


def test_endpoint_document(ops_server) -> None:
    doc = admin(ops_server)
    assert doc["name"] == "ops"
    assert doc["traffic"] == {"blue": 100, "green": 0, "picky": 0}
    assert doc["mirror_traffic"] == {"green": 50}
    blue = doc["deployments"]["blue"]
    assert blue["model_version"] == "1" and blue["model"]
    assert blue["desired_replicas"] == 1 and blue["scale_events"] == []
    (replica,) = blue["replicas"]
    assert set(replica) >= {"pid", "state", "in_flight"} and replica["state"] == "ready"


def test_admin_routes_need_the_admin_key(ops_server) -> None:
    for key in (None, "key-one-primary"):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        assert httpx.get(f"{ops_server.url}/admin/endpoint", headers=headers).status_code == 401
        r = httpx.put(f"{ops_server.url}/admin/traffic", json={"blue": 0, "green": 100}, headers=headers)
        assert r.status_code == 401
    assert admin(ops_server)["traffic"]["blue"] == 100


def test_bad_changes_are_400_naming_the_field_and_change_nothing(ops_server) -> None:
    cases = [
        ("/admin/traffic", {"blue": 60, "green": 30}, "sum 90"),
        ("/admin/traffic", {"blue": 50, "purple": 50}, "traffic.purple: no deployment named 'purple'"),
        ("/admin/traffic", {"blue": "100"}, "traffic.blue: got '100'"),
        ("/admin/traffic", {"blue": 50, "green": 50}, "mirror_traffic.green: 'green' has 50% live traffic"),
        ("/admin/traffic", [1], "expected an object"),
        ("/admin/mirror", {"green": 70}, "mirror_traffic.green: got 70; expected a percent from 0 to 50"),
        ("/admin/mirror", {"blue": 10}, "'blue' has 100% live traffic"),
        ("/admin/mirror", {"green": 10, "picky": 10}, "expected one deployment"),
    ]
    for path, body, message in cases:
        r = admin_put(ops_server, path, body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error_code"] == "BAD_REQUEST" and message in r.json()["message"], r.text
    r = httpx.put(f"{ops_server.url}/admin/traffic", content=b"{not json",
                  headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 400
    doc = admin(ops_server)
    assert doc["traffic"] == {"blue": 100, "green": 0, "picky": 0} and doc["mirror_traffic"] == {"green": 50}


def test_mirror_change_answers_the_document(ops_server) -> None:
    try:
        r = admin_put(ops_server, "/admin/mirror", {})
        assert r.status_code == 200 and r.json()["mirror_traffic"] == {}
        r = admin_put(ops_server, "/admin/mirror", {"picky": 10})
        assert r.json()["mirror_traffic"] == {"picky": 10}
    finally:
        assert admin_put(ops_server, "/admin/mirror", {"green": 50}).status_code == 200


def test_cli_traffic(ops_server) -> None:
    env = {**os.environ, "SCORER_ADMIN_KEY": ADMIN_KEY}
    run = [sys.executable, "-m", "scorer.cli", "traffic", ops_server.url]
    try:
        bad = subprocess.run([*run, "blue=70", "picky=20"], env=env, cwd=REPO, capture_output=True, text=True)
        assert bad.returncode == 1 and "sum 90" in bad.stderr
        assert subprocess.run([*run, "blue"], env=env, cwd=REPO, capture_output=True).returncode == 2
        ok = subprocess.run([*run, "blue=70", "picky=30"], env=env, cwd=REPO, capture_output=True, text=True)
        assert ok.returncode == 0, ok.stderr
        assert '"traffic":{"blue":70,"green":0,"picky":30}' in ok.stdout
    finally:
        assert admin_put(ops_server, "/admin/traffic", {"blue": 100}).status_code == 200
    assert admin(ops_server)["traffic"] == {"blue": 100, "green": 0, "picky": 0}


def test_traffic_flips_under_load_fail_no_request(ops_server) -> None:
    """32 clients score while traffic flips blue <-> green ten times: every request answers 200."""
    failures: list[str] = []
    seen: set[str] = set()
    done = threading.Event()
    flipped = threading.Event()

    def client() -> None:
        with ops_server.client() as c:
            for i in range(400):  # bounded; stops early once the flips are over
                r = c.post("/score", json=split_body(1, i % 50))
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                seen.add(r.headers.get("azureml-model-deployment", "?"))
                if done.is_set() and i >= 5:
                    return

    threads = [threading.Thread(target=client) for _ in range(32)]
    try:
        assert admin_put(ops_server, "/admin/mirror", {}).status_code == 200  # green takes live traffic
        for t in threads:
            t.start()
        for n in range(10):
            share = {"blue": 0, "green": 100} if n % 2 == 0 else {"blue": 100, "green": 0}
            assert admin_put(ops_server, "/admin/traffic", share).status_code == 200
            flipped.wait(0.15)
    finally:
        done.set()
        for t in threads:
            t.join(60)
        admin_put(ops_server, "/admin/traffic", {"blue": 100, "green": 0})
        admin_put(ops_server, "/admin/mirror", {"green": 50})
    assert failures == []
    assert seen == {"blue", "green"}


def test_openapi_describes_every_route(ops_server) -> None:
    from starlette.routing import Route

    from serving.app import build_app
    from serving.dataplane import DataPlane

    doc = httpx.get(f"{ops_server.url}/openapi.json").json()
    app = build_app(DataPlane.__new__(DataPlane))  # only the route table is read
    for route in app.routes:
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":
                assert method.lower() in doc["paths"].get(route.path, {}), (method, route.path)
