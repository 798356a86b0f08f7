"""The import rules of docs/architecture.md, read from the source (every import, also those inside
functions): a module that breaks one fails here with the line that does."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# the server bring-up and the HTTP route modules: the only ones that may import Starlette or uvicorn
HTTP_MODULES = {"serving.server", "serving.app", "serving.v2_routes", "serving.body", "serving.responses",
                "serving.connection"}
# the local handle's transport: what the supervisor and the balancer must not know
TRANSPORT = ("serving.replicas.local", "serving.replicas.connection", "serving.replicas.forkserver",
             "serving.worker.main")
# what the replica process (serving/worker/) may import from serving
CHILD_MAY_USE = ("serving.worker", "serving.errors", "serving.frames", "serving.handshake", "serving.protocol",
                 "serving.logs")


def _modules(package: str) -> dict[str, Path]:
    root = REPO / package
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


ALL = {**_modules("scorer"), **_modules("serving"), **_modules("batch")}


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file; relative imports made absolute."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for a in node.names:  # `from serving import frames` imports serving.frames, not all of serving
                sub = f"{base}.{a.name}"
                found.append((node.lineno, sub if sub in ALL or not base.startswith(OURS) else base))
    return found


OURS = ("scorer", "serving", "batch")


def _under(name: str, prefixes: tuple[str, ...] | set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _violations(rule: str) -> list[str]:
    bad = []
    for module, path in ALL.items():
        for line, name in _imports(path, module):
            where = f"{path.relative_to(REPO)}:{line} imports {name}"
            if rule == "serving-batch":
                if (module.startswith("serving") and _under(name, ("batch",))) or \
                        (module.startswith("batch") and _under(name, ("serving",))):
                    bad.append(where)
            elif rule == "http":
                if _under(name, ("starlette", "uvicorn")) and module not in HTTP_MODULES:
                    bad.append(where)
            elif rule == "transport":
                if module.startswith(("serving.replicas.supervisor", "serving.replicas.balancer",
                                      "serving.replicas.handle")) and _under(name, TRANSPORT):
                    bad.append(where)
            elif rule == "child" and module.startswith("serving.worker") and _under(name, ("serving",)) \
                    and not _under(name, CHILD_MAY_USE):
                bad.append(where)
    return bad


@pytest.mark.parametrize("rule", ["serving-batch", "http", "transport", "child"])
def test_import_rule(rule: str) -> None:
    assert _violations(rule) == []


def test_the_rules_see_imports() -> None:
    """The reader finds what the rules look for (so an empty list above means something)."""
    app = _imports(ALL["serving.app"], "serving.app")
    assert any(n.startswith("starlette") for _, n in app)
    local = _imports(ALL["serving.replicas.local"], "serving.replicas.local")
    assert any(n == "serving.replicas.connection" for _, n in local)
    main = _imports(ALL["serving.worker.main"], "serving.worker.main")
    assert any(n.startswith("serving.worker") for _, n in main)
    assert set(HTTP_MODULES) <= set(ALL)
