"""Keys (with rotation), signed expiring tokens, open health routes, generated keys file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import httpx
import pytest

from serving.auth import check_token, load_or_create_keys, make_token
from tests.online.conftest import API_KEYS, TOKEN_SECRET
from tests.online.data import split_body

PIN = {"azureml-model-deployment": "blue"}


def token(ttl: int, secret: str = TOKEN_SECRET) -> str:
    return make_token(secret.encode(), ttl)


def _score(url: str, auth: str | None, pin: dict[str, str] = PIN) -> httpx.Response:
    headers = dict(pin)
    if auth is not None:
        headers["Authorization"] = auth
    return httpx.post(f"{url}/score", json=split_body(1), headers=headers, timeout=30)


def test_both_keys_work_for_rotation(server) -> None:
    for key in API_KEYS:
        assert _score(server.url, f"Bearer {key}").status_code == 200


@pytest.mark.parametrize("auth", [None, "Bearer wrong-key", "Basic a2V5LW9uZQ==", f"Bearer {API_KEYS[0]}x",
                                  "Bearer", API_KEYS[0]])
def test_missing_or_wrong_key_is_401(server, auth) -> None:
    r = _score(server.url, auth)
    assert r.status_code == 401
    assert r.json()["error_code"] == "UNAUTHENTICATED"
    assert API_KEYS[0] not in r.text


@pytest.mark.parametrize("path", ["/ping", "/health", "/ready", "/version", "/openapi.json"])
def test_health_and_openapi_are_open(server, path: str) -> None:
    r = httpx.get(f"{server.url}{path}")
    assert r.status_code == 200, r.text


def test_openapi_documents_the_scoring_route(server) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    assert "/score" in doc["paths"] and "/invocations" in doc["paths"]


def test_keys_are_never_logged(server) -> None:
    _score(server.url, f"Bearer {API_KEYS[1]}")
    _score(server.url, "Bearer some-wrong-key")
    logs = server.logs()
    assert API_KEYS[0] not in logs and API_KEYS[1] not in logs and "some-wrong-key" not in logs


def test_admin_needs_the_admin_key(server) -> None:
    assert httpx.get(f"{server.url}/admin/endpoint").status_code == 401
    assert httpx.get(f"{server.url}/admin/endpoint", headers={"Authorization": f"Bearer {API_KEYS[0]}"}
                     ).status_code == 401


def test_token_auth(token_server) -> None:
    pin = {"azureml-model-deployment": "only"}
    assert _score(token_server.url, f"Bearer {token(60)}", pin).status_code == 200
    expired = make_token(TOKEN_SECRET.encode(), 10, now=time.time() - 60)
    r = _score(token_server.url, f"Bearer {expired}", pin)
    assert r.status_code == 401 and "expired" in r.json()["message"]
    r = _score(token_server.url, f"Bearer {token(60, 'another-secret')}", pin)
    assert r.status_code == 401 and "signature" in r.json()["message"]
    forged = token(60).rsplit(".", 2)
    r = _score(token_server.url, f"Bearer v1.{int(time.time()) + 99999}.{forged[2]}", pin)
    assert r.status_code == 401
    assert _score(token_server.url, None, pin).status_code == 401


def test_scorer_token_cli_makes_a_token_the_server_accepts(token_server) -> None:
    env = {**os.environ, "SCORER_TOKEN_SECRET": TOKEN_SECRET}
    out = subprocess.run([sys.executable, "-m", "scorer.cli", "token", "--ttl", "120"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    tok = out.stdout.strip()
    assert check_token(tok, [TOKEN_SECRET.encode()]) is None
    assert _score(token_server.url, f"Bearer {tok}", {"azureml-model-deployment": "only"}).status_code == 200
    env.pop("SCORER_TOKEN_SECRET")
    out = subprocess.run([sys.executable, "-m", "scorer.cli", "token"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "SCORER_TOKEN_SECRET" in out.stderr


def test_token_expiry_and_signature_unit() -> None:
    secret = b"s"
    tok = make_token(secret, 5, now=1000)
    assert check_token(tok, [secret], now=1004) is None
    assert check_token(tok, [secret], now=1006) == "token expired"
    assert check_token(tok, [b"other", secret], now=1000) is None  # secret rotation
    assert check_token("garbage", [secret]) == "malformed token"


def test_generated_keys_file_is_private_and_stable(tmp_path) -> None:
    path = tmp_path / "keys.json"
    keys, created = load_or_create_keys(path)
    assert created and len(keys) == 2 and keys[0] != keys[1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = load_or_create_keys(path)
    assert again == keys and not created_again
