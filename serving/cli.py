"""`scorer serve` and `scorer token` (called by scorer.cli with the parsed arguments)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys


def _key_hint(auth_mode: str, generated_key: str | None) -> str | None:
    """What the printed curl puts after Bearer: the key itself only when it was just generated."""
    from serving.auth import keys_file

    if auth_mode == "none":
        return None
    if auth_mode in ("aml_token", "aad_token", "token"):
        return "$(scorer token)"
    if os.environ.get("SCORER_API_KEY", "").strip():
        return "${SCORER_API_KEY%%,*}"
    if generated_key:
        return generated_key
    path = keys_file().resolve()
    return f"$(python3 -c 'import json;print(json.load(open(\"{path}\"))[\"primary\"])')"


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
    for w in loaded.warnings:
        print(f"scorer serve: warning: {w}", file=sys.stderr)
    try:
        auth, lines = Auth.from_env(spec.auth_mode)
    except ValueError as exc:
        print(f"scorer serve: {exc}", file=sys.stderr)
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
            return runner.run(serve(spec, args.host, args.port, auth, hint))
    except KeyboardInterrupt:
        return 130


def run_token(args: argparse.Namespace) -> int:
    from serving.auth import make_token, token_secrets

    secrets = token_secrets()
    if not secrets:
        print("scorer token: SCORER_TOKEN_SECRET is not set (the server must use the same secret)", file=sys.stderr)
        return 2
    if args.ttl <= 0:
        print("scorer token: --ttl must be a positive number of seconds", file=sys.stderr)
        return 2
    print(make_token(secrets[0], args.ttl))
    return 0
