"""`scorer batch`: argparse Namespace -> exit code (0 done, 1 threshold crossed, 2 invalid before Ray starts,
3 output not writable mid-run, 4 other failure, 130 interrupted; docs/batch.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from batch.runner import JobArgs, run_job


class _Refused(Exception):
    """One line for stderr; exit 2."""


def deployment_file(files: list[str]) -> str:
    """The batch deployment among the files given: alone, or beside Azure's `batchEndpoint` file,
    which is checked and must be the endpoint the deployment names (`endpoint_name`)."""
    if len(files) == 1:
        return files[0]
    if len(files) > 2:
        raise _Refused(f"expected a batch deployment file, optionally after its batch endpoint file; got "
                       f"{len(files)} files")
    from scorer.spec import SpecError
    from scorer.spec.loader import detect_kind, load_batch_endpoint
    from scorer.spec.yamlfile import read_yaml

    try:
        docs = [read_yaml(Path(f)) for f in files]
    except SpecError as exc:
        raise _Refused(str(exc).splitlines()[0]) from None
    except OSError as exc:
        raise _Refused(f"{exc.filename}: {exc.strerror}") from None
    kinds = [detect_kind(d.data) for d in docs]
    if sorted(kinds) != ["batch_deployment", "batch_endpoint"]:
        what = ", ".join(f"{f} is a {k.replace('_', ' ')}" for f, k in zip(files, kinds, strict=True))
        raise _Refused(f"expected one batch endpoint file and one batch deployment file; {what}")
    ep_doc, dep_doc = (docs[0], docs[1]) if kinds[0] == "batch_endpoint" else (docs[1], docs[0])
    try:
        endpoint = load_batch_endpoint(ep_doc.path, ep_doc).spec
    except SpecError as exc:
        raise _Refused(str(exc).splitlines()[0]) from None
    named = dep_doc.data.get("endpoint_name", dep_doc.data.get("endpoint"))
    if named is not None and str(named) != endpoint.name:
        raise _Refused(f"{dep_doc.path}: endpoint_name {named!r} is not the batch endpoint given beside it "
                       f"({ep_doc.path}: name {endpoint.name!r})")
    return str(dep_doc.path)


def run_batch(args: argparse.Namespace) -> int:
    try:
        deployment = deployment_file(list(args.files))
    except _Refused as exc:
        print(f"scorer batch: {exc}", file=sys.stderr)
        return 2
    keep = [c.strip() for c in (getattr(args, "keep_columns", None) or "").split(",") if c.strip()]
    job = JobArgs(deployment=deployment, inputs=list(args.input), output=args.output,
                  address=getattr(args, "address", None), resume=bool(getattr(args, "resume", False)),
                  overwrite=bool(getattr(args, "overwrite", False)), keep_columns=keep)
    return run_job(job)
