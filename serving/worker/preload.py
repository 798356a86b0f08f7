"""Imported once in the forkserver: everything a replica needs before its model, so that each
replica start pays only for the model load (measured: about 2 s of imports and 0.75 s of
package-metadata scanning saved per replica)."""

from __future__ import annotations

import contextlib

import mlflow.pyfunc  # noqa: F401
import mlflow.pyfunc.scoring_server  # noqa: F401
import numpy  # noqa: F401
import orjson  # noqa: F401
import pandas  # noqa: F401

import serving.worker.main  # noqa: F401

for _name in ("mlflow.sklearn", "sklearn.linear_model", "sklearn.ensemble", "sklearn.pipeline", "skops.io",
              "uvloop"):
    with contextlib.suppress(ImportError):
        __import__(_name)

with contextlib.suppress(Exception):  # the map mlflow builds to compare a model's requirements
    from mlflow.utils import requirements_utils

    requirements_utils._init_modules_to_packages_map()  # type: ignore[no-untyped-call]
