"""Which ReplicaHandle a deployment's replicas get: `local` or a third party's `python:MODULE:CALLABLE`."""

from __future__ import annotations

import importlib

from serving.replicas.handle import HandleFactory

PYTHON_PREFIX = "python:"


def load_factory(spec: str) -> HandleFactory:
    """`local` (the default) or `python:MODULE:CALLABLE`, the callable being a HandleFactory.
    Raises ValueError with the problem named."""
    if spec == "local":
        from serving.replicas.local import local_handle

        return local_handle
    if not spec.startswith(PYTHON_PREFIX) or spec.count(":") != 2:
        raise ValueError(f"replica_handle {spec!r}: expected 'local' or 'python:MODULE:CALLABLE'")
    _, module, name = spec.split(":")
    try:
        factory = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ValueError(f"replica_handle {spec!r}: cannot import {module}: {exc}") from None
    except AttributeError:
        raise ValueError(f"replica_handle {spec!r}: module {module} has no {name}") from None
    if not callable(factory):
        raise ValueError(f"replica_handle {spec!r}: {module}.{name} is not callable")
    return factory  # type: ignore[no-any-return]
