"""Write demo input for `scorer batch`: `python examples/training/demo_data.py [--rows N] [--out data]`.

Rows are the breast-cancer features the demo models were trained on, resampled with a little
noise (seeded, so every run writes the same files): `data/demo.csv` and `data/demo.parquet`, the
columns the models' signature names, in its order.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def frame(rows: int, seed: int = 7):  # type: ignore[no-untyped-def]
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    features = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    features.columns = [c.replace(" ", "_") for c in features.columns]
    rng = np.random.default_rng(seed)
    sample = features.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)
    noise = rng.normal(0.0, 0.01, size=sample.shape) * sample.std().to_numpy()
    return (sample + noise).round(6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--out", default="data", help="folder to write (created)")
    args = parser.parse_args(argv)
    if args.rows < 1:
        print("demo_data: --rows must be at least 1", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = frame(args.rows)
    data.to_csv(out / "demo.csv", index=False)
    data.to_parquet(out / "demo.parquet", index=False)
    print(f"wrote {args.rows} rows to {out / 'demo.csv'} and {out / 'demo.parquet'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
