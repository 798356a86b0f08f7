"""docs/architecture.md against the code: its table of moved import paths, and the links of the
Markdown a reader follows (README.md, docs/*.md), which must stay inside the repository."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ARCHITECTURE = REPO / "docs" / "architecture.md"
DOTTED = re.compile(r"`((?:scorer|serving|batch)(?:\.\w+)+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
# pages that must not link outside the repository (the map, and the README that links it)
INSIDE_ONLY = ("README.md", "docs/architecture.md", "docs/endpoint-yaml.md")


def _resolve(path: str) -> Any:
    """The module or attribute a dotted path names; ImportError / AttributeError when it does not exist."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def _moved_rows() -> list[tuple[list[str], list[str]]]:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Moved import paths", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and DOTTED.search(cells[0]):  # the setting's row: test_kill_after_...
            rows.append((DOTTED.findall(cells[0]), DOTTED.findall(cells[1])))
    return rows


ROWS = _moved_rows()


def test_the_table_is_read() -> None:
    assert len(ROWS) >= 15
    assert any("serving.replica.pool.Deployment" in old for old, _ in ROWS)


@pytest.mark.parametrize(("old", "new"), ROWS, ids=[o[0] for o, _ in ROWS])
def test_moved_path(old: list[str], new: list[str]) -> None:
    """Each new path imports; each old one is gone, or (a name a module happens to import) the same object."""
    assert new, "a row without a new path"
    targets = [_resolve(n) for n in new]
    for path in old:
        try:
            obj = _resolve(path)
        except (ImportError, AttributeError):
            continue
        assert any(obj is t for t in targets), f"{path} still imports and is not {new}"


def test_kill_after_is_a_deployment_setting() -> None:
    from scorer.spec.models import OnlineDeployment

    d = OnlineDeployment.model_validate({"model": "m", "request_settings": {"kill_after_ms": 250}})
    assert d.request_settings.kill_after_ms == 250
    assert OnlineDeployment.model_validate({"model": "m"}).request_settings.kill_after_ms == 1000
    assert not any("SCORER_KILL_AFTER_S" in p.read_text() for p in (REPO / "serving").rglob("*.py"))


def test_scorer_imports_neither_side_but_in_its_cli() -> None:
    """Rule 1 of the map: `scorer` is the core both sides share; only its CLI hands over to them."""
    bad = []
    for path in sorted((REPO / "scorer").rglob("*.py")):
        if path == REPO / "scorer" / "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            bad += [f"{path.relative_to(REPO)}:{node.lineno} imports {n}" for n in names
                    if n.split(".")[0] in ("serving", "batch")]
    assert bad == []


def _pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_readme_links_the_map() -> None:
    assert "(docs/architecture.md)" in (REPO / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            broken.append(target)
    assert broken == [], f"{page.relative_to(REPO)}: links to nothing: {broken}"


@pytest.mark.parametrize("name", INSIDE_ONLY)
def test_no_link_outside_the_repository(name: str) -> None:
    text = (REPO / name).read_text(encoding="utf-8")
    outside = [t for t in LINK.findall(text) if re.match(r"[a-z]+://", t)]
    outside += re.findall(r"<(https?://[^>]+)>", text)
    assert outside == [], f"{name} links outside the repository: {outside}"
