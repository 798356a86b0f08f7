"""Start-up overlap: the job is prepared (model resolved, inputs checked, first mini-batch planned)
in a thread while the driver starts Ray and the actors import the model runtime.

Ray is started only when the cheap checks pass (`worth_starting`), so the common mistakes (a
previous job in the output folder, a missing input) still exit 2 without starting Ray. A model or
signature problem found by the thread also exits 2, with the same message, after the Ray this job
started is shut down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """`fn()` in a daemon thread; `result()` waits and returns its value or raises its exception."""

    def __init__(self, fn: Callable[[], T], name: str = "scorer-batch-prepare") -> None:
        # both sides of the overlap import modules: Ray's and the thread's lazy imports must not
        # share a module, or the two import locks could deadlock; what they share is imported here
        import click  # noqa: F401  (MLflow's and Ray's start-up both import it)
        import ray  # noqa: F401

        self._fn = fn
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def worth_starting(inputs: list[str], previous: list[str], resume: bool, overwrite: bool) -> bool:
    """Whether the cheap checks pass, so that starting Ray now is not wasted: no previous job is in
    the way, and every local input names something. (The thread finds the same problems, and more,
    and words them.)"""
    import glob

    from batch.storage import is_uri

    if previous and not resume and not overwrite:
        return False
    for raw in inputs:
        if is_uri(raw):
            continue
        path = Path(raw).expanduser()
        if next(glob.iglob(str(path), recursive=True), None) is None if glob.has_magic(raw) else not path.exists():
            return False
    return True
