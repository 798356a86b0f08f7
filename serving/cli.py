"""`scorer serve` and `scorer token` (called by scorer.cli with the parsed arguments)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from pathlib import Path


def _key_hint(auth_mode: str, generated_key: str | None) -> str | None:
    """What the printed curl puts after Bearer: the key itself only when it was just generated."""
    from serving.auth import keys_file

    if auth_mode == "none":
        return None
    if auth_mode in ("aml_token", "aad_token", "token"):
        # the scorer next to this interpreter: `scorer` alone is not on PATH outside the venv
        return f"$({shlex.quote(str(Path(sys.executable).parent / 'scorer'))} token)"
    if os.environ.get("SCORER_API_KEY", "").strip():
        return "${SCORER_API_KEY%%,*}"
    if generated_key:
        return generated_key
    path = keys_file().resolve()
    return f"$({shlex.quote(sys.executable)} -c 'import json;print(json.load(open(\"{path}\"))[\"primary\"])')"


def run_serve(args: argparse.Namespace) -> int:
    from scorer.spec import Endpoint, SpecError, load_endpoint
    from serving import logs
    from serving.auth import Auth, load_or_create_keys

    logs.setup(args.log_format)
    try:
        loaded = load_endpoint(args.endpoint, args.deployments)
    except SpecError as exc:
        print(f"scorer serve: {exc}", file=sys.stderr)
        return 2
    spec = loaded.spec
    assert isinstance(spec, Endpoint)
    from scorer.spec.limits import local_replica_problem

    if (too_many := local_replica_problem(spec)) is not None:
        print(f"scorer serve: {too_many}", file=sys.stderr)
        return 2
    for w in loaded.warnings:
        print(f"scorer serve: warning: {w}", file=sys.stderr)
    from serving.limits import Limits

    try:
        auth, lines = Auth.from_env(spec.auth_mode, getattr(spec, "server", None))
        limits = Limits.resolve(spec.server).with_tls(getattr(args, "ssl_certfile", None),
                                                      getattr(args, "ssl_keyfile", None))
        from serving import desired_state

        if desired_state.owner_from_env() == desired_state.FILES:
            desired_state.poll_seconds_from_env()
    except ValueError as exc:
        print(f"scorer serve: {exc}", file=sys.stderr)
        return 2
    tls_problem = limits.check_tls()
    if tls_problem:
        print(f"scorer serve: {tls_problem}", file=sys.stderr)
        return 2
    generated = None
    for line in lines:
        if line.startswith("generated API keys"):
            generated = load_or_create_keys()[0][0]
        print(f"scorer: {line}", file=sys.stderr if line.startswith("WARNING") else sys.stdout, flush=True)
    hint = _key_hint(spec.auth_mode, generated)
    from serving.server import serve

    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(serve(spec, args.host, args.port, auth, hint,
                                    load=lambda: load_endpoint(args.endpoint, args.deployments), limits=limits,
                                    watch=[args.endpoint, *args.deployments]))
    except KeyboardInterrupt:
        return 130


def run_token(args: argparse.Namespace) -> int:
    from serving.auth import make_token, max_token_ttl_s, token_secrets

    secrets = token_secrets()
    if not secrets:
        print("scorer token: SCORER_TOKEN_SECRET is not set (the server must use the same secret)", file=sys.stderr)
        return 2
    if args.ttl <= 0:
        print("scorer token: --ttl must be a positive number of seconds", file=sys.stderr)
        return 2
    try:
        limit = max_token_ttl_s()
    except ValueError as exc:
        print(f"scorer token: {exc}", file=sys.stderr)
        return 2
    if args.ttl > limit:
        print(f"scorer token: --ttl {args.ttl} is over max_token_ttl_s={limit}: the server refuses tokens that "
              "expire later (raise SCORER_MAX_TOKEN_TTL_S, here and on the server, to allow more)", file=sys.stderr)
        return 2
    print(make_token(secrets[0], args.ttl))
    return 0


def admin_call(method: str, url: str, body: object, what: str) -> int:
    """Call an admin route with the first SCORER_ADMIN_KEY; print the answer; 0 / 1 / 2 like the CLI."""
    import httpx

    key = os.environ.get("SCORER_ADMIN_KEY", "").split(",")[0].strip()
    if not key:
        print(f"scorer {what}: SCORER_ADMIN_KEY is not set (the server's admin key)", file=sys.stderr)
        return 2
    try:
        resp = httpx.request(method, url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    except httpx.HTTPError as exc:
        print(f"scorer {what}: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    if resp.status_code != 200:
        try:
            message = resp.json().get("message", resp.text)
        except ValueError:
            message = resp.text
        print(f"scorer {what}: {resp.status_code} {message}", file=sys.stderr)
        return 1
    print(resp.text)
    return 0


def run_traffic(args: argparse.Namespace) -> int:
    shares: dict[str, int] = {}
    for item in args.shares:
        name, sep, pct = item.partition("=")
        if not sep or not name or not pct.strip().lstrip("-").isdigit():
            print(f"scorer traffic: {item!r}: expected DEPLOYMENT=PERCENT, e.g. blue=90", file=sys.stderr)
            return 2
        shares[name] = int(pct)
    return admin_call("PUT", args.url.rstrip("/") + "/admin/traffic", shares, "traffic")


def run_scale(args: argparse.Namespace) -> int:
    """`scorer scale URL DEPLOYMENT N`: the replica count (or the floor when autoscaled)."""
    from urllib.parse import quote

    if args.instances < 1:
        print(f"scorer scale: instances: got {args.instances}; expected a positive integer", file=sys.stderr)
        return 2
    url = f"{args.url.rstrip('/')}/admin/deployments/{quote(args.deployment, safe='')}/scale"
    return admin_call("POST", url, {"instances": args.instances}, "scale")
