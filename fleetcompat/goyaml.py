"""YAML scalars as NFD reads them: go-yaml v2's rules, Go's number printing.

NFD parses specs with sigs.k8s.io/yaml, which resolves plain scalars with go-yaml
v2 (`y` and `n` are booleans, `1e3` is a float, `012` is octal, `1:20` is a
string, where PyYAML says otherwise) and prints numbers as Go does when a string
is expected (`go_float32`). `GoYamlLoader` is the bounded safe loader of
`fleetcompat.documents` with go-yaml's scalar resolution.
"""

from __future__ import annotations

import math
import re
import struct
from typing import Any

import yaml

from fleetcompat.documents import _BoundedLoader

_GO_CONSTANTS: dict[str, Any] = {
    **dict.fromkeys(["y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE"], True),
    **dict.fromkeys(["on", "On", "ON"], True),
    **dict.fromkeys(["n", "N", "no", "No", "NO", "false", "False", "FALSE"], False),
    **dict.fromkeys(["off", "Off", "OFF"], False),
    **dict.fromkeys(["", "~", "null", "Null", "NULL"], None),
    **dict.fromkeys([".nan", ".NaN", ".NAN"], math.nan),
    **dict.fromkeys([".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"], math.inf),
    **dict.fromkeys(["-.inf", "-.Inf", "-.INF"], -math.inf),
}
_GO_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_GO_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
_GO_DATE = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")
_DIGITS = {16: "0123456789abcdefABCDEF", 8: "01234567", 2: "01", 10: "0123456789"}


def go_yaml_scalar(text: str) -> Any:
    """A plain YAML scalar resolved as go-yaml v2 does (resolve.go)."""
    if text in _GO_CONSTANTS:
        return _GO_CONSTANTS[text]
    first = text[0]
    if first == ".":
        return float(text) if _GO_DOT_FLOAT.fullmatch(text) else text
    if first not in "+-0123456789":
        return text

    date = _GO_DATE.fullmatch(text)
    if date:
        year, month, day = (int(g) for g in date.groups())
        if 1 <= month <= 12 and 1 <= day <= 31:
            return f"{year:04d}-{month:02d}-{day:02d}T00:00:00Z"
    plain = text.replace("_", "")
    number = go_parse_int(plain)
    if number is not None and -(2**63) <= number < 2**64:
        return number
    if _GO_FLOAT.fullmatch(plain):
        return float(plain)
    return text


def go_parse_int(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 0, ...) without the range check, or None."""
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    base = 10
    if len(text) > 1 and text[0] == "0":
        prefix = text[1].lower()
        base, skip = {"x": (16, 2), "o": (8, 2), "b": (2, 2)}.get(prefix, (8, 1))
        text = text[skip:]
    if not text or any(c not in _DIGITS[base] for c in text):
        return None
    return sign * int(text, base)


def go_float32(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 32): how sigs.k8s.io/yaml prints floats."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    try:
        single = struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        single = math.copysign(math.inf, value)
    if math.isinf(single):
        return "+Inf" if single > 0 else "-Inf"
    if single == 0:
        return "-0" if math.copysign(1, single) < 0 else "0"
    for digits in range(1, 10):
        text = f"{single:.{digits - 1}e}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            break
    mantissa, exponent_text = text.split("e")
    exponent = int(exponent_text)
    sign = "-" if mantissa.startswith("-") else ""
    figures = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    if exponent < -4 or exponent >= 6:
        head, tail = figures[0], figures[1:]
        body = f"{head}.{tail}" if tail else head
        return f"{sign}{body}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{figures}"
    whole = figures[: exponent + 1].ljust(exponent + 1, "0")
    fraction = figures[exponent + 1 :]
    return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"


class GoYamlLoader(_BoundedLoader):
    """The bounded safe loader, resolving plain scalars as go-yaml v2 does."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0] and value != "<<":
            return "tag:fleetcompat,2026:go-plain"
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]


def _construct_go_plain(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    return go_yaml_scalar(node.value)


GoYamlLoader.add_constructor("tag:fleetcompat,2026:go-plain", _construct_go_plain)
