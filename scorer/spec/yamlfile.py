"""YAML reading with bounded work, remembering where each key was so errors can name the line.

The text is parsed once, event by event (libyaml's C parser where PyYAML has it), into nodes.
Reading stops as soon as the document passes the byte, node or depth limit (`limits.py`), and
an alias counts as the whole subtree it stands for, so a few hundred bytes of aliases cannot
grow into gigabytes. Every failure is a `SpecError` naming the file: invalid UTF-8, binary
bytes, syntax errors, duplicate keys (both lines) and limits alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    StreamEndEvent,
)

from scorer.spec.limits import YAML_MAX_BYTES, YAML_MAX_DEPTH, YAML_MAX_NODES
from scorer.spec.problems import Loc, Problem, SpecError

# libyaml's parser in C when PyYAML was built with it; the pure-Python one otherwise.
LOADER: type[Any] = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader
_MERGE = "tag:yaml.org,2002:merge"


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


@dataclass
class _Open:
    """A collection whose end event has not come yet."""

    node: yaml.SequenceNode | yaml.MappingNode
    anchor: str | None
    loc: Loc
    size: int = 1  # nodes below and including this one, aliases expanded
    key: yaml.Node | None = None  # a mapping's key waiting for its value
    seen: dict[tuple[str, str], int] = field(default_factory=dict)  # scalar key -> line


class _Reader:
    """Builds the node graph from parser events, enforcing the limits as it goes."""

    def __init__(self, path: Path, loader: Any) -> None:  # the parser, its resolver and constructor
        self.path, self.loader = path, loader
        self.max_nodes, self.max_depth = YAML_MAX_NODES.value(), YAML_MAX_DEPTH.value()
        self.anchors: dict[str, tuple[yaml.Node, int]] = {}
        self.stack: list[_Open] = []
        self.total = 0
        self.root: yaml.Node | None = None
        self.duplicates: list[Problem] = []

    def fail(self, message: str, mark: Any) -> SpecError:
        return SpecError([Problem((), message, file=self.path, line=mark.line + 1 if mark else None)])

    def compose(self) -> yaml.Node | None:
        """The document's root node, or None for an empty file."""
        documents = 0
        while True:
            event = self.loader.get_event()
            if isinstance(event, StreamEndEvent):
                return self.root
            if isinstance(event, DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise self.fail("not valid YAML: a second document (---); expected one document per file",
                                    event.start_mark)
            elif isinstance(event, AliasEvent):
                if event.anchor not in self.anchors:
                    raise self.fail(f"not valid YAML: alias *{event.anchor} refers to no anchor before it "
                                    "(or to the collection it is inside)", event.start_mark)
                self.add(*self.anchors[event.anchor], event)
            elif isinstance(event, ScalarEvent):
                event = cast(Any, event)  # libyaml's marks are its own class
                tag = event.tag
                if tag is None or tag == "!":
                    tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
                node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
                if event.anchor is not None:
                    self.anchors[event.anchor] = (node, 1)
                self.add(node, 1, event)
            elif isinstance(event, CollectionStartEvent):
                self.open(event)
            elif isinstance(event, SequenceEndEvent | MappingEndEvent):
                done = self.stack.pop()
                done.node.end_mark = event.end_mark
                if done.anchor is not None:
                    self.anchors[done.anchor] = (done.node, done.size)
                if self.stack:
                    self.stack[-1].size += done.size - 1  # the 1 was counted when it opened

    def open(self, event: Any) -> None:
        kind = yaml.MappingNode if isinstance(event, MappingStartEvent) else yaml.SequenceNode
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(kind, None, event.implicit)
        node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
        self.add(node, 1, event)
        self.stack.append(_Open(node, event.anchor, self.child_loc()))
        if len(self.stack) > self.max_depth:
            raise self.fail(f"nested deeper than {self.max_depth} levels ({YAML_MAX_DEPTH.env}); "
                            "expected an endpoint or deployment document", event.start_mark)

    def add(self, node: yaml.Node, size: int, event: Any) -> None:
        self.total += size
        if self.total > self.max_nodes:
            raise self.fail(f"more than {self.max_nodes} YAML nodes (aliases expanded, {YAML_MAX_NODES.env}); "
                            "expected an endpoint or deployment document", event.start_mark)
        if not self.stack:
            self.root = node
            return
        top = self.stack[-1]
        top.size += size
        if isinstance(top.node, yaml.SequenceNode):
            top.node.value.append(node)
        elif top.key is None:
            top.key = node
            self.check_duplicate(top, node)
        else:
            top.node.value.append((top.key, node))
            top.key = None

    def child_loc(self) -> Loc:
        """Where the node just added sits (keys of mappings are named by their text)."""
        if len(self.stack) == 0:
            return ()
        top = self.stack[-1]
        if isinstance(top.node, yaml.SequenceNode):
            return (*top.loc, len(top.node.value) - 1)
        key = top.node.value[-1][0] if top.key is None else top.key
        return (*top.loc, key.value if isinstance(key, yaml.ScalarNode) else "?")

    def check_duplicate(self, top: _Open, key: yaml.Node) -> None:
        if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE:
            return
        line = key.start_mark.line + 1
        first = top.seen.get((key.tag, key.value))
        if first is None:
            top.seen[(key.tag, key.value)] = line
            return
        self.duplicates.append(Problem((*top.loc, key.value), f"duplicate key at lines {first} and {line}; "
                                       "expected each key once (YAML would keep only the last)",
                                       file=self.path, line=line))


def _lines(node: yaml.Node) -> dict[Loc, int]:
    """Line of every key path; aliases are walked as the copies they stand for (bounded above)."""
    lines: dict[Loc, int] = {}
    todo: list[tuple[yaml.Node, Loc]] = [(node, ())]
    while todo:
        current, loc = todo.pop()
        lines.setdefault(loc, current.start_mark.line + 1)
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark.line)
                lines.setdefault((*loc, key), key_node.start_mark.line + 1)
                todo.append((value_node, (*loc, key)))
        elif isinstance(current, yaml.SequenceNode):
            todo.extend((item, (*loc, i)) for i, item in enumerate(current.value))
    return lines


def _read_text(path: Path) -> str:
    limit = YAML_MAX_BYTES.value()
    try:
        with path.open("rb") as f:
            raw = f.read(limit + 1)
    except OSError as exc:
        raise SpecError([Problem((), f"cannot read file: {exc.strerror or exc}", file=path)]) from exc
    if len(raw) > limit:
        raise SpecError([Problem((), f"larger than {limit} bytes ({YAML_MAX_BYTES.env}); "
                                 "expected an endpoint or deployment document", file=path)])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SpecError([Problem((), f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start}; "
                                 "expected a UTF-8 YAML file", file=path, line=line)]) from None


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def read_yaml(path: Path) -> YamlDoc:
    """Parse one file once, within the limits; every failure is a `SpecError` naming the file."""
    text = _read_text(path)
    loader: Any = None
    try:
        loader = LOADER(text)  # the pure-Python reader checks every character here
        reader = _Reader(path, loader)
        node = reader.compose()
        if reader.duplicates:
            raise SpecError(reader.duplicates)
        data = loader.construct_document(node) if node is not None else None
    except SpecError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        hint = " (an unsubstituted {{...}} template? fill it in first)" if "{{" in text else ""
        raise SpecError([Problem((), f"not valid YAML: {_one_line(exc.problem or exc)}{hint}", file=path,
                                 line=line)]) from None
    except yaml.reader.ReaderError as exc:
        if LOADER is yaml.SafeLoader:  # a character offset
            line = text.count("\n", 0, exc.position) + 1
        else:  # libyaml counts bytes
            line = text.encode("utf-8").count(b"\n", 0, exc.position) + 1
        raise SpecError([Problem((), f"not valid YAML: character #x{exc.character:04x} is not allowed "
                                 "(binary data?)", file=path, line=line)]) from None
    except Exception as exc:  # noqa: BLE001
        # PyYAML's constructors raise what they meet: ValueError for `2001-02-30` or an integer of
        # 5,000 digits, KeyError for `!!bool xyz`, AttributeError for `!!timestamp xyz`, ...
        raise SpecError([Problem((), f"not valid YAML: {_one_line(exc)}", file=path)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(
            [Problem((), f"got {type(data).__name__}; expected a mapping of fields", file=path, line=1)]
        )
    return YamlDoc(path=path, data=data, lines=_lines(node) if node is not None else {})
