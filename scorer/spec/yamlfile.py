"""YAML reading that remembers where each key was, so errors can name the line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scorer.spec.problems import Loc, Problem, SpecError


@dataclass
class YamlDoc:
    path: Path
    data: Any
    lines: dict[Loc, int]

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest part of `loc` that exists in the file."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*loc, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*loc, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), lines)


def read_yaml(path: Path) -> YamlDoc:
    """Parse one file; syntax errors become a `SpecError` naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([Problem((), f"cannot read file: {exc.strerror or exc}", file=path)]) from exc
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError([Problem((), f"not valid YAML: {exc.problem or exc}", file=path, line=line)]) from exc
    except yaml.YAMLError as exc:
        raise SpecError([Problem((), f"not valid YAML: {exc}", file=path)]) from exc
    lines: dict[Loc, int] = {}
    if node is not None:
        _walk(node, (), lines)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(
            [Problem((), f"got {type(data).__name__}; expected a mapping of fields", file=path, line=1)]
        )
    return YamlDoc(path=path, data=data, lines=lines)
