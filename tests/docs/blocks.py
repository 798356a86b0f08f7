"""Find the shell blocks of README.md and docs/*.md that a newcomer runs, so a test can run them.

A block is marked by an HTML comment on the line right before its fence (GitHub does not render
the comment, so the page reads as before):

    <!-- newcomer: run -->       runs to the end and must exit 0
    <!-- newcomer: server -->    starts a server that does not exit (its `--port N` is the port)
    <!-- newcomer: client -->    runs against the last `server` block above it in the same file
    <!-- newcomer: run soak -->  `soak`: too slow for CI, runs with `make doc-blocks` / `make soak`

In a ```console block the `$ ` lines (with `\\` continuations) are the commands and the other
lines are output the command must print (lines holding `...` are elided and not checked); a
```bash or ```sh block is run as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KINDS = ("run", "server", "client")
FLAGS = ("soak",)
MARKER = re.compile(r"^\s*<!--\s*newcomer:\s*(?P<words>[^>]*?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<lang>[\w-]*)")
SHELLS = ("bash", "sh", "shell", "console")


@dataclass
class Block:
    """One marked fenced block: where it is, what kind, and what it runs."""

    path: str
    line: int
    kind: str
    soak: bool
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def script(self) -> str:
        """The commands to hand to bash."""
        if self.lang != "console":
            return self.text
        commands: list[str] = []
        continued = False
        for line in self.text.splitlines():
            if continued or line.startswith("$ "):
                commands.append(line if continued else line[2:])
                continued = line.rstrip().endswith("\\")
        return "\n".join(commands) + "\n"

    def expected_output(self) -> list[str]:
        """Output lines a console block shows (minus elisions), each of which must be printed."""
        if self.lang != "console":
            return []
        expected: list[str] = []
        continued = False
        for line in self.text.splitlines():
            if continued or line.startswith("$ "):
                continued = line.rstrip().endswith("\\")
            elif line.strip() and "..." not in line:
                expected.append(line.rstrip())
        return expected


@dataclass
class Group:
    """What one test runs: a `run` block alone, or a `server` block with its `client` blocks."""

    first: Block
    clients: list[Block] = field(default_factory=list)

    @property
    def soak(self) -> bool:
        return self.first.soak or any(c.soak for c in self.clients)


class MarkerError(ValueError):
    """A marker the runner cannot use (unknown word, no fence after it, a client without a server)."""


def doc_files(repo: Path = REPO) -> list[Path]:
    """README.md and docs/*.md: the Markdown a newcomer reads."""
    return [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]


def parse(path: Path, repo: Path = REPO) -> list[Block]:
    """Every marked block of one Markdown file, in order."""
    rel = str(path.relative_to(repo)) if path.is_relative_to(repo) else str(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if not m:
            continue
        words = m["words"].split()
        if not words or words[0] not in KINDS or any(w not in FLAGS for w in words[1:]):
            raise MarkerError(f"{rel}:{i + 1}: marker {line.strip()!r}; expected 'newcomer: "
                              f"{'|'.join(KINDS)} [soak]'")
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if fence is None or fence["lang"] not in SHELLS:
            raise MarkerError(f"{rel}:{i + 1}: a newcomer marker must be followed at once by a "
                              f"```{'/```'.join(SHELLS)} fence")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith(fence["fence"])), None)
        if end is None:
            raise MarkerError(f"{rel}:{i + 2}: the fence is never closed")
        blocks.append(Block(rel, i + 2, words[0], "soak" in words[1:], fence["lang"],
                            "\n".join(lines[i + 2:end]) + "\n"))
    return blocks


def groups(blocks: list[Block]) -> list[Group]:
    """Pair every client block with the server block above it."""
    out: list[Group] = []
    server: Group | None = None
    for block in blocks:
        if block.kind == "client":
            if server is None or server.first.path != block.path:
                raise MarkerError(f"{block.where}: a client block needs a server block above it in the same file")
            server.clients.append(block)
            continue
        out.append(Group(block))
        server = out[-1] if block.kind == "server" else None
    return out


def all_groups(repo: Path = REPO) -> list[Group]:
    """The groups of every doc file, in reading order."""
    found: list[Group] = []
    for path in doc_files(repo):
        found += groups(parse(path, repo))
    return found
