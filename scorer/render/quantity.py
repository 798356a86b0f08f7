"""Kubernetes resource quantities: parse, sum over replicas, print back in the usual units."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(r"^([+]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
_SUFFIX = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
_BINARY = [("Ei", 2 ** 60), ("Pi", 2 ** 50), ("Ti", 2 ** 40), ("Gi", 2 ** 30), ("Mi", 2 ** 20), ("Ki", 2 ** 10)]
BYTE_RESOURCES = frozenset({"memory", "ephemeral-storage"})
"""Resources counted in bytes: summed and printed with binary suffixes (Gi, Mi)."""


def parse(value: str | int | float) -> Decimal:
    """The quantity's value in base units (cores, bytes, devices); ValueError if it is not one."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"got {value!r}; expected a Kubernetes quantity such as 500m, 2, 512Mi or 2Gi")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIX[suffix]
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
        raise ValueError(f"got {value!r}; expected a Kubernetes quantity") from exc


def fmt(resource: str, amount: Decimal) -> str:
    """`amount` (base units) as Kubernetes writes it: cpu in cores or millicores, bytes in Gi/Mi."""
    if resource == "cpu":
        millis = math.ceil(amount * 1000)
        return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
    if resource in BYTE_RESOURCES:
        count = math.ceil(amount)
        for suffix, size in _BINARY:
            if count >= size and count % size == 0:
                return f"{count // size}{suffix}"
        return str(count)
    return str(int(amount)) if amount == amount.to_integral_value() else str(amount.normalize())
