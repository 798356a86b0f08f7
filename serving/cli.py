"""`scorer serve` and `scorer token` (called by scorer.cli with the parsed arguments)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scorer.spec import Endpoint


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

    address = getattr(args, "address", None)
    if (problem := cluster_problem(spec, address)) is not None:
        print(f"scorer serve: {problem}", file=sys.stderr)
        return 2
    if (too_many := local_replica_problem(spec, on_cluster=bool(address))) is not None:
        print(f"scorer serve: {too_many}", file=sys.stderr)
        return 2
    for w in loaded.warnings:
        print(f"scorer serve: warning: {w}", file=sys.stderr)
        if address and w.loc and w.loc[-1] == "instance_type":
            print("scorer serve: warning: instance_type is ignored under --address: Ray places replicas by their "
                  "resources: block (requests/limits)", file=sys.stderr)
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
    if address:
        try:
            join_cluster(address)
        except ConnectionError as exc:
            print(f"scorer serve: {exc}", file=sys.stderr)
            return 1
    from serving.server import serve

    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(serve(spec, args.host, args.port, auth, hint,
                                    load=lambda: load_endpoint(args.endpoint, args.deployments), limits=limits,
                                    watch=[args.endpoint, *args.deployments]))
    except KeyboardInterrupt:
        return 130
    finally:
        logs.flush()
        if address:
            leave_cluster()


def cluster_problem(spec: Endpoint, address: str | None) -> str | None:
    """Why the deployments cannot be placed as asked (one line), or None: `replica_handle: ray`
    without --address; under --address, a `resources:` value that is not a quantity."""
    for name, d in spec.deployments.items():
        if d.replica_handle == "ray" and not address:
            return (f"deployments.{name}.replica_handle 'ray' needs a Ray cluster: add --address HOST:PORT "
                    "(or --address auto)")
        if d.scale_settings.hook == "ray" and not address:
            return (f"deployments.{name}.scale_settings.hook 'ray' asks the Ray autoscaler for nodes: it needs "
                    "--address HOST:PORT (or --address auto)")
    if address:
        from serving.replicas.ray_actor import ray_resources

        for name, d in spec.deployments.items():
            try:
                ray_resources(d.resources)
            except ValueError as exc:
                return f"deployments.{name}.{exc}"
    return None


def join_cluster(address: str) -> None:
    """Join the Ray cluster (telemetry off, Ray's logs quiet) and place `local` and `ray` replicas
    there, authenticated with SCORER_CLUSTER_SECRET or a secret made here (never logged).
    Raises ConnectionError with one line."""
    import logging
    import secrets

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    from serving.replicas.factory import use_cluster
    from serving.replicas.ray_actor import NAMESPACE

    try:
        ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING, log_to_driver=False,
                 configure_logging=True)
    except Exception as exc:  # ConnectionError, or Ray's own for a refused token
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConnectionError(f"cannot join the Ray cluster at {address}: {cause[:300]} (is it running and "
                              "reachable, and does this process hold the cluster's token?)") from None
    given = os.environ.get("SCORER_CLUSTER_SECRET", "")
    use_cluster(given.encode() if given else secrets.token_bytes(32))


def leave_cluster() -> None:
    """The router's actors go with it (Ray ends the actors a driver owns when it disconnects)."""
    import contextlib

    import ray

    from serving.replicas.factory import use_cluster

    use_cluster(None)
    with contextlib.suppress(Exception):
        ray.shutdown()


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
