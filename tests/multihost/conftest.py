"""Multi-host test ground: real Ray clusters of two or three "hosts" made of network namespaces
(see cluster.py). Skipped, with the reason, where namespaces are not allowed (not root, no
`ip netns`, no mount namespaces)."""

from __future__ import annotations

import atexit
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.multihost.cluster import NetnsCluster, unavailable

_REASON: list[str | None] = []


def skip_reason() -> str | None:
    """Checked once per session (it makes and deletes a namespace)."""
    if not _REASON:
        _REASON.append(unavailable())
    return _REASON[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [i for i in items if i.get_closest_marker("multihost")]
    if marked and (reason := skip_reason()):
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=reason))


def start_cluster(nodes: int) -> Iterator[NetnsCluster]:
    """A started cluster, torn down on every way out (failure, Ctrl-C, SIGTERM, interpreter exit)."""
    cluster = NetnsCluster(nodes)
    atexit.register(cluster.close)
    old = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        cluster.close()
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, on_term)
    try:
        cluster.up().start_ray()
        yield cluster
    finally:
        cluster.close()
        signal.signal(signal.SIGTERM, old)
        atexit.unregister(cluster.close)


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[NetnsCluster]:
    """Head (node 1, the driver's namespace) and one worker node with a private /tmp and working dir."""
    yield from start_cluster(2)


@pytest.fixture(scope="module")
def three_nodes() -> Iterator[NetnsCluster]:
    yield from start_cluster(3)


def _doubler():
    """Defined inside a function so that cloudpickle stores the class by value (actors import no tests)."""
    import mlflow.pyfunc

    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            import os
            import time

            delay = float(os.environ.get("TEST_DELAY", "0") or 0)  # per mini-batch, from the deployment
            if delay:
                time.sleep(delay)
            return model_input["x"].to_numpy(dtype=float) * 2

    return Doubler()


@pytest.fixture(scope="session")
def driver_only_model() -> Iterator[str]:
    """A model folder under the driver's /tmp: a private node's /tmp is another tmpfs, so only
    what scorer ships through Ray gets the model there."""
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    root = Path(tempfile.mkdtemp(prefix="scmh-model-", dir="/tmp"))
    path = root / "doubler"
    frame = pd.DataFrame({"x": np.arange(5, dtype=float)})
    mlflow.pyfunc.save_model(str(path), python_model=_doubler(),
                             signature=infer_signature(frame, np.arange(5, dtype=float)))
    yield str(path)
    shutil.rmtree(root, ignore_errors=True)
