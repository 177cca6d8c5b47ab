"""Go's view of a template's values: truth, `%v` printing, and the functions.

The values are what NFD hands its templates, decoded: maps of strings, lists of
maps, strings, ints and bools. FUNCTIONS holds Go's builtins and the Sprig string
functions a template may call; the rest of Sprig is not here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Value = Any


class TemplateError(Exception):
    """A template that cannot be parsed or run; the engine names the rule."""


def truth(value: Value) -> bool:
    """Go's truth: zero values (false, 0, "", nil, empty map or list) are false."""
    return bool(value)


def format_value(value: Value) -> str:
    """A value printed as Go's fmt %v would."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, dict):
        inner = " ".join(f"{k}:{format_value(value[k])}" for k in sorted(value))
        return f"map[{inner}]"
    if isinstance(value, list):
        return "[" + " ".join(format_value(v) for v in value) + "]"
    return str(value)


def type_name(value: Value) -> str:
    """The Go type name an error message gives for a value."""
    return {list: "[]MatchedElement", str: "string", int: "int", bool: "bool"}.get(
        type(value), type(value).__name__
    )


def _index(item: Value, *keys: Value) -> Value:
    for key in keys:
        if isinstance(item, dict):
            item = item.get(key, "" if _is_element(item) else None)
        elif isinstance(item, list | str) and isinstance(key, int):
            if not 0 <= key < len(item):
                raise TemplateError(f"error calling index: index out of range: {key}")
            item = item[key]
        else:
            raise TemplateError(f"error calling index: can't index item of {item!r}")
    return item


def _is_element(item: dict[str, Value]) -> bool:
    return all(isinstance(v, str) for v in item.values())


def _length(item: Value) -> int:
    if isinstance(item, str | list | dict):
        return len(item)
    raise TemplateError(f"error calling len: len of {type_name(item)}")


def _comparable(a: Value, b: Value, name: str) -> None:
    if type(a) is not type(b) or not isinstance(a, str | int | bool):
        raise TemplateError(f"error calling {name}: incompatible types for comparison")


def _eq(first: Value, *others: Value) -> bool:
    for other in others:
        _comparable(first, other, "eq")
        if first == other:
            return True
    return False


def _ordered(name: str, test: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def compare(a: Value, b: Value) -> bool:
        _comparable(a, b, name)
        if isinstance(a, bool):
            raise TemplateError(f"error calling {name}: invalid type for comparison")
        return test(a, b)

    return compare


def _and(*values: Value) -> Value:
    for value in values:
        if not truth(value):
            return value
    return values[-1]


def _or(*values: Value) -> Value:
    for value in values:
        if truth(value):
            return value
    return values[-1]


FUNCTIONS: dict[str, Callable[..., Value]] = {
    "index": _index,
    "len": _length,
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _ordered("lt", lambda a, b: a < b),
    "le": _ordered("le", lambda a, b: a <= b),
    "gt": _ordered("gt", lambda a, b: a > b),
    "ge": _ordered("ge", lambda a, b: a >= b),
    "and": _and,
    "or": _or,
    "not": lambda value: not truth(value),
    "print": lambda *values: "".join(format_value(v) for v in values),
    "lower": lambda s: str(s).lower(),
    "upper": lambda s: str(s).upper(),
    "trim": lambda s: str(s).strip(),
    "trimPrefix": lambda prefix, s: s[len(prefix) :] if s.startswith(prefix) else s,
    "trimSuffix": lambda suffix, s: (
        s[: -len(suffix)] if suffix and s.endswith(suffix) else s
    ),
    "contains": lambda sub, s: sub in s,
    "hasPrefix": lambda prefix, s: s.startswith(prefix),
    "hasSuffix": lambda suffix, s: s.endswith(suffix),
    "replace": lambda old, new, s: s.replace(old, new),
}
"""Go's builtins and the Sprig string functions NFD templates plausibly use."""
