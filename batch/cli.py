"""`scorer batch`: argparse Namespace -> exit code (0 done, 1 threshold crossed, 2 invalid, 130 interrupted)."""

from __future__ import annotations

import argparse

from batch.runner import JobArgs, run_job


def run_batch(args: argparse.Namespace) -> int:
    keep = [c.strip() for c in (getattr(args, "keep_columns", None) or "").split(",") if c.strip()]
    job = JobArgs(deployment=args.deployment, inputs=list(args.input), output=args.output,
                  address=getattr(args, "address", None), resume=bool(getattr(args, "resume", False)),
                  overwrite=bool(getattr(args, "overwrite", False)), keep_columns=keep)
    return run_job(job)
