"""Fixtures of the doc-block tests: the session registry with the seed models, and a fresh copy of
the repository's runnable state with a newcomer's environment."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.blocks import REPO

COPIED = ("configs", "examples", "Makefile", "pyproject.toml", "constraints.txt")
SECRETS = ("SCORER_STATE_DIR", "SCORER_API_KEY", "SCORER_ADMIN_KEY", "SCORER_TOKEN_SECRET")


@pytest.fixture(scope="session")
def registry(demo_registry: str) -> str:
    """The session registry, with the seed files' models too (what `make train` registers)."""
    sys.path.insert(0, str(REPO / "examples" / "training"))
    try:
        import train
    finally:
        sys.path.pop(0)
    assert train.main(["--also-register", "thatmodel", "--also-register", "my-model"]) == 0
    return os.environ["MLFLOW_TRACKING_URI"]


def _link_venv(venv: Path) -> None:
    """`.venv/` of the copy: the running interpreter's environment, with its own install stamp
    (dated ahead) so that `make` in the copy never re-installs into the real environment."""
    venv.mkdir()
    if sys.prefix != sys.base_prefix:
        for entry in Path(sys.prefix).iterdir():
            if entry.name not in (".install-stamp", "pip-install.log"):
                (venv / entry.name).symlink_to(entry)
    else:
        (venv / "bin").mkdir()
        for entry in Path(sysconfig.get_path("scripts")).iterdir():
            (venv / "bin" / entry.name).symlink_to(entry)
        if not (venv / "bin" / "python").exists():
            (venv / "bin" / "python").symlink_to(sys.executable)
    stamp = venv / ".install-stamp"
    stamp.touch()
    ahead = time.time() + 10 * 365 * 86400
    os.utime(stamp, (ahead, ahead))


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh copy to run blocks in (no `.scorer/`, no `data/`), and a newcomer's environment: no
    keys or secrets, `.venv/bin` not on PATH, a `curl` that fails on a 4xx or 5xx."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, root / name)
    _link_venv(root / ".venv")
    shims = tmp_path / "shims"
    shims.mkdir()
    curl = shutil.which("curl")
    if curl:
        shim = shims / "curl"
        shim.write_text(f'#!/bin/sh\nexec "{curl}" --fail-with-body --max-time 60 "$@"\n')
        shim.chmod(0o755)
    venv_bins = {str(Path(sys.prefix) / "bin"), sysconfig.get_path("scripts")}
    path = [str(shims)] + [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p not in venv_bins]
    env = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("PYTEST_")}
    env.update(PATH=os.pathsep.join(path), HOME=str(tmp_path))
    env.pop("VIRTUAL_ENV", None)
    yield root, env
