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


def test_openapi_has_real_request_schemas(server) -> None:
    """Request schemas (not a bare object), so a schema-driven fuzzer reaches the handlers."""
    doc = httpx.get(f"{server.url}/openapi.json").json()
    schemas = doc["components"]["schemas"]
    body = doc["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/MlflowRequest"} in body["oneOf"]  # the scoring scripts' body
    formats = {next(iter(b["required"])) for b in schemas["MlflowRequest"]["oneOf"]}
    assert formats == {"dataframe_split", "dataframe_records", "instances", "inputs", "input_data"}
    split = schemas["MlflowRequest"]["oneOf"][0]["properties"]["dataframe_split"]
    assert split["properties"]["columns"]["items"]["type"] == "string"
    infer = doc["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    tensor = schemas[infer["$ref"].rsplit("/", 1)[1]]["properties"]["inputs"]["items"]
    assert set(tensor["required"]) == {"name", "shape", "datatype", "data"}
    assert "FP16" in tensor["properties"]["datatype"]["enum"] and "BF16" not in tensor["properties"]["datatype"]["enum"]


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


def test_tokens_expiring_past_the_max_ttl_are_refused(token_server) -> None:
    pin = {"azureml-model-deployment": "only"}
    r = _score(token_server.url, f"Bearer {token(999_999_999_999_999)}", pin)
    assert r.status_code == 401 and "max_token_ttl_s" in r.json()["message"], r.text
    r = _score(token_server.url, f"Bearer {token(86400 + 120)}", pin)
    assert r.status_code == 401, r.text
    assert _score(token_server.url, f"Bearer {token(86400 - 5)}", pin).status_code == 200


def test_max_token_ttl_knob_unit(monkeypatch) -> None:
    from serving.auth import DEFAULT_MAX_TOKEN_TTL_S, max_token_ttl_s

    secret = b"s"
    assert DEFAULT_MAX_TOKEN_TTL_S == 86400
    far = make_token(secret, 90_000, now=1000)
    assert check_token(far, [secret], now=1000, max_ttl=86400) is not None
    assert check_token(far, [secret], now=1000, max_ttl=100_000) is None
    monkeypatch.delenv("SCORER_MAX_TOKEN_TTL_S", raising=False)
    assert max_token_ttl_s(None) == 86400
    assert max_token_ttl_s(3600) == 3600
    monkeypatch.setenv("SCORER_MAX_TOKEN_TTL_S", "600")
    assert max_token_ttl_s(3600) == 600
    digits = f"v1.{'9' * 5000}.sig"
    assert check_token(digits, [secret]) == "malformed token"
    assert check_token("v1.²³.sig", [secret]) == "malformed token"


@pytest.mark.parametrize("ttl", ["999999999999999", "86401"])
def test_scorer_token_refuses_a_ttl_past_the_max(ttl: str) -> None:
    env = {**os.environ, "SCORER_TOKEN_SECRET": TOKEN_SECRET}
    env.pop("SCORER_MAX_TOKEN_TTL_S", None)
    out = subprocess.run([sys.executable, "-m", "scorer.cli", "token", "--ttl", ttl], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout
    assert out.stdout == "" and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "86400" in out.stderr and "SCORER_MAX_TOKEN_TTL_S" in out.stderr
    out = subprocess.run([sys.executable, "-m", "scorer.cli", "token", "--ttl", "90000"], capture_output=True,
                         env={**env, "SCORER_MAX_TOKEN_TTL_S": "100000"}, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def _validate(doc: dict) -> None:  # type: ignore[type-arg]
    from openapi_spec_validator import validate

    validate(doc)


def test_openapi_is_valid_and_carries_the_live_signatures(server, test_models) -> None:
    """Valid OpenAPI 3; /score's body is oneOf the deployments' signatures, with their input examples;
    every operation has a unique operationId; security follows auth_mode (key here)."""
    doc = httpx.get(f"{server.url}/openapi.json").json()
    _validate(doc)
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) and "post_score" in ids and "post_invocations" in ids
    content = doc["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]
    schemas = doc["components"]["schemas"]
    sigs = [schemas[b["$ref"].rsplit("/", 1)[1]] for b in content["schema"]["oneOf"]]
    titles = " ".join(s.get("title", "") for s in sigs)
    assert "blue" in titles and "green" in titles and "mixed" in titles
    mixed = next(s for s in sigs if "mixed" in s.get("title", ""))
    records = next(b for b in mixed["oneOf"] if "dataframe_records" in b["required"])
    row = records["properties"]["dataframe_records"]["items"]
    assert row["properties"] == {"x": {"type": "number"}, "name": {"type": "string"}}
    assert records["properties"]["params"]["properties"]["scale"]["type"] == "number"
    assert content["examples"]["mixed"]["value"]["dataframe_split"]["columns"] == ["x", "name"]
    assert "blue" in content["examples"]
    assert doc["paths"]["/score"]["post"]["security"] == [{"bearer": []}]
    assert doc["paths"]["/v2/models/{name}/infer"]["post"]["security"] == [{"bearer": []}]
    assert doc["paths"]["/ping"]["get"]["security"] == []
    assert doc["paths"]["/admin/reload"]["post"]["security"] == [{"bearer": []}]


def test_openapi_security_follows_auth_mode(token_server, test_models) -> None:
    from types import SimpleNamespace

    from serving.openapi_live import document

    doc = httpx.get(f"{token_server.url}/openapi.json").json()
    _validate(doc)
    assert doc["paths"]["/score"]["post"]["security"] == [{"bearer": []}]
    dep = SimpleNamespace(version="abc", cfg=SimpleNamespace(model_path=str(test_models["mixed"])))
    open_doc = document(SimpleNamespace(deployments={"only": dep}, spec=SimpleNamespace(auth_mode="none")))
    _validate(open_doc)
    for path, ops in open_doc["paths"].items():
        for op in ops.values():
            assert op["security"] == ([{"bearer": []}] if path.startswith("/admin") else []), path
    body = open_doc["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Signature0"}  # one deployment: its signature alone
