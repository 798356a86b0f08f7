"""Train the demo models and register them: `python examples/training/train.py`.

Version 1 of `demo-classifier` is a LogisticRegression (alias `blue`), version 2 a RandomForest
with 100 trees (alias `green`), both on scikit-learn's breast-cancer data (no download). Runs
without scorer installed: it only needs mlflow and scikit-learn. Idempotent: versions that exist
are kept unless `--force` is given.

Registry: MLFLOW_TRACKING_URI if set, else `.scorer/mlflow.db` (SQLite) in the working directory,
with artifacts in `.scorer/artifacts`: the same defaults as scorer.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

for _key, _value in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}.items():
    os.environ.setdefault(_key, _value)

MODEL_NAME = "demo-classifier"


def _tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    state = Path(os.environ.get("SCORER_STATE_DIR") or Path.cwd() / ".scorer")
    state.mkdir(exist_ok=True)
    return f"sqlite:///{(state / 'mlflow.db').resolve()}"


def _experiment(client, name: str) -> str:  # type: ignore[no-untyped-def]
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifacts = (Path(os.environ.get("SCORER_STATE_DIR") or Path.cwd() / ".scorer") / "artifacts").resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    return client.create_experiment(name, artifact_location=artifacts.as_uri())


def _data():  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    frame = load_breast_cancer(as_frame=True).frame
    # Column names without spaces, so CSV and V2 clients need no quoting.
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    features = frame.drop(columns=["target"])
    return train_test_split(features, frame["target"], test_size=0.25, random_state=7)


def _estimators():  # type: ignore[no-untyped-def]
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return [
        ("blue", "logistic_regression", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))),
        ("green", "random_forest_100", RandomForestClassifier(n_estimators=100, random_state=7, n_jobs=1)),
    ]


def _log(estimator, x_train, x_test, y_test, run_name: str, experiment_id: str):  # type: ignore[no-untyped-def]
    """Log one fitted model with signature and example; skops with its types trusted at save time,
    so the model loads anywhere without extra flags."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from skops.io import dumps, get_untrusted_types

    signature = infer_signature(x_train, estimator.predict(x_train))
    accuracy = float((estimator.predict(x_test) == y_test).mean())
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.log_params({"estimator": type(estimator).__name__, "rows": len(x_train)})
        mlflow.log_metric("accuracy", accuracy)
        info = mlflow.sklearn.log_model(
            estimator,
            name="model",
            signature=signature,
            input_example=x_train.head(5),
            serialization_format="skops",
            skops_trusted_types=get_untrusted_types(data=dumps(estimator)),
        )
    return run.info.run_id, info.model_uri, accuracy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default=MODEL_NAME, help="registered model name")
    parser.add_argument("--experiment", default="demo-classifier-training")
    parser.add_argument("--force", action="store_true", help="train and register new versions even if present")
    parser.add_argument("--also-register", action="append", default=[], metavar="NAME",
                        help="also register version 1 (the LogisticRegression) as NAME version 1, if NAME is "
                             "not registered yet (the seed endpoints name `thatmodel` and `my-model`)")
    args = parser.parse_args(argv)

    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(_tracking_uri())
    client = MlflowClient()
    try:
        existing = {int(v.version) for v in client.search_model_versions(f"name='{args.name}'")}
    except MlflowException:
        existing = set()
    estimators = _estimators()
    if not args.force and len(existing) >= len(estimators):
        print(f"{args.name}: versions {sorted(existing)} already registered in {mlflow.get_tracking_uri()}; "
              "nothing to do (--force trains new ones)")
        _also_register(client, args.name, args.also_register)
        return 0
    if existing and not args.force:
        print(f"{args.name}: partly registered ({sorted(existing)}); run with --force to add new versions",
              file=sys.stderr)
        return 1

    x_train, x_test, y_train, y_test = _data()
    experiment_id = _experiment(client, args.experiment)
    with contextlib.suppress(MlflowException):  # already registered
        client.create_registered_model(args.name, description="scorer demo: breast-cancer classifiers")
    for alias, run_name, estimator in estimators:
        estimator.fit(x_train, y_train)
        run_id, model_uri, accuracy = _log(estimator, x_train, x_test, y_test, run_name, experiment_id)
        version = client.create_model_version(args.name, model_uri, run_id=run_id)
        client.set_registered_model_alias(args.name, alias, version.version)
        print(f"{args.name} version {version.version} ({run_name}, accuracy {accuracy:.3f}) alias {alias!r}")
    _also_register(client, args.name, args.also_register)
    print(f"registry: {mlflow.get_tracking_uri()}")
    return 0


def _also_register(client, source_name: str, names: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Register `source_name` version 1 under other names (idempotent), so that YAMLs naming
    other models (the seed documents' `ws:/thatmodel:1`, `ws:/my-model:1`) run as written."""
    from mlflow.exceptions import MlflowException

    if not names:
        return
    first = client.get_model_version(source_name, "1")
    for name in names:
        try:
            if client.search_model_versions(f"name='{name}'"):
                continue
        except MlflowException:
            pass
        with contextlib.suppress(MlflowException):
            client.create_registered_model(name, description=f"scorer demo: a copy of {source_name} version 1")
        version = client.create_model_version(name, first.source, run_id=first.run_id)
        print(f"{name} version {version.version} (= {source_name} version 1)")


if __name__ == "__main__":
    sys.exit(main())
