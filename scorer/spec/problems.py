"""What a user did wrong in a YAML file, in terms they can act on: path, line, value, expectation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Loc = tuple[str | int, ...]


def dotted(loc: Loc) -> str:
    return ".".join(str(p) for p in loc) or "(document)"


def show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Problem:
    """One error or warning found in one file."""

    loc: Loc
    message: str
    file: Path | None = None
    line: int | None = None
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = str(self.file) if self.file else "<spec>"
        if self.line:
            where += f":{self.line}"
        if not self.loc:  # about the file as a whole
            return f"{where}: {self.severity}: {self.message}"
        return f"{where}: {self.severity}: {dotted(self.loc)}: {self.message}"


@dataclass
class SpecError(Exception):
    """Raised with every problem found, never just the first."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)
