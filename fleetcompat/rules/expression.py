"""One NFD match expression, evaluated against one element exactly as NFD does.

The semantics are those of `evaluateMatchExpression` in NFD's
`pkg/apis/nfd/nodefeaturerule/expression.go`:

- the op is checked first: an unknown op is an error even for a missing element;
- "" (match any), Exists and DoesNotExist take no values and look only at presence;
- every other op gives a plain false, with no error and no value-count check, when
  the element is missing or has no value (a flag); only then are the values checked;
- Gt/Ge/Lt/Le/GtLt/GeLe compare Go `strconv.Atoi` integers, or with `type: version`
  lenient semantic versions (Masterminds semver, pre-release dropped);
- InRegexp is an unanchored RE2 search.

Errors are `RuleError` with NFD's own wording; the engine adds the rule, feature and
element they concern. Each expression compiles once into a small closure
(`MatchExpression.matcher`), so evaluating it allocates nothing on the common path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import re2

from fleetcompat.errors import RuleError

Matcher = Callable[[bool, "str | None"], bool]
"""An evaluator: (element present, its value or None for a flag) -> matched."""

OPS = frozenset(
    {
        "",
        "In",
        "NotIn",
        "InRegexp",
        "Exists",
        "DoesNotExist",
        "Gt",
        "Ge",
        "Lt",
        "Le",
        "GtLt",
        "GeLe",
        "IsTrue",
        "IsFalse",
    }
)
"""Every op NFD knows; "" is its internal MatchAny."""

TYPE_VERSION = "version"

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1
_ATOI = re.compile(r"[+-]?[0-9]+")
_SEMVER = re.compile(
    r"v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?"
    r"(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
    r"(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
)
_REGEX_RESULTS_MAX = 4096
"""Values remembered per regular expression before the memory is cleared."""


@dataclass(frozen=True)
class MatchExpression:
    """NFD's MatchExpression: an op, its values, and an optional value type."""

    op: str
    value: tuple[str, ...] = ()
    type: str = ""
    matcher: Matcher = field(init=False, repr=False, compare=False, hash=False)
    text: str = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "matcher", compile_matcher(self))
        object.__setattr__(self, "text", self._nfd_string())

    def evaluate(self, valid: bool, value: str | None) -> bool:
        """Whether the expression holds for one element; raises RuleError."""
        return self.matcher(valid, value)

    def __str__(self) -> str:
        """NFD's String(): `{op: "In", value: ["a" "b"]}` or `{op: "Exists"}`."""
        return self.text

    def _nfd_string(self) -> str:
        if not self.value:
            return f"{{op: {go_quote(self.op)}}}"
        return f"{{op: {go_quote(self.op)}, value: {go_quote_list(self.value)}}}"

    def to_nfd(self) -> dict[str, Any]:
        """NFD's JSON shape of the expression (value and type omitted when empty)."""
        data: dict[str, Any] = {"op": self.op}
        if self.value:
            data["value"] = list(self.value)
        if self.type:
            data["type"] = self.type
        return data


def go_quote(text: str) -> str:
    """A string quoted as Go's %q does, close enough for messages and sorting."""
    return json.dumps(text, ensure_ascii=False)


def go_quote_list(values: tuple[str, ...] | list[str]) -> str:
    """A string list as Go's %q prints it: `["a" "b"]`."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def go_list(values: tuple[str, ...] | list[str]) -> str:
    """A string list as Go's %v prints it: `[a b]`."""
    return "[" + " ".join(values) + "]"


def atoi(text: str) -> int | None:
    """Go's strconv.Atoi on 64 bits: signed base-10 ASCII digits, or None."""
    if not _ATOI.fullmatch(text):
        return None
    number = int(text)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


def parse_version(text: str) -> tuple[int, int, int] | None:
    """Masterminds semver NewVersion with the pre-release dropped, or None.

    Lenient as NFD uses it: an optional `v`, one to three numeric parts (missing
    ones are 0, leading zeros allowed), then an optional `-pre-release` and
    `+build`. The pre-release must still be valid (no empty part, no leading zero
    in a numeric part) even though it is dropped before comparing.
    """
    match = _SEMVER.fullmatch(text)
    if match is None:
        return None
    parts = [match.group(1), match.group(2), match.group(3)]
    numbers = [int(p.lstrip(".")) if p else 0 for p in parts]
    if any(n > _UINT64_MAX for n in numbers):
        return None
    pre = match.group(5)
    if pre and not _valid_prerelease(pre):
        return None
    return numbers[0], numbers[1], numbers[2]


def _valid_prerelease(pre: str) -> bool:
    """Masterminds' validatePrerelease: numeric identifiers have no leading zero."""
    for part in pre.split("."):
        if part == "":
            return False
        if part.isdigit() and len(part) > 1 and part[0] == "0":
            return False
    return True


_REGEX_OPTIONS = re2.Options()
_REGEX_OPTIONS.log_errors = False
_REGEX_OPTIONS.never_capture = True
_REGEXES: dict[str, Any] = {}


def compile_regex(pattern: str) -> Any:
    """A compiled RE2 pattern, cached by its text; raises re2.error when invalid."""
    compiled = _REGEXES.get(pattern)
    if compiled is None:
        compiled = re2.compile(pattern, options=_REGEX_OPTIONS)
        _REGEXES[pattern] = compiled
    return compiled


def compile_matcher(expr: MatchExpression) -> Matcher:
    """Turn an expression into its evaluator closure, as NFD's switch would run."""
    op, values = expr.op, expr.value

    if op not in OPS:
        message = f"invalid Op {go_quote(op)}"
        return _raiser(message)

    if op in ("", "Exists", "DoesNotExist"):
        if values:
            return _raiser(
                f"invalid expression, 'value' field must be empty for Op "
                f"{go_quote(op)} (have {go_list(values)})"
            )
        if op == "":
            return _always_true
        if op == "Exists":
            return _exists
        return _does_not_exist

    check = _value_check(expr)

    def matcher(valid: bool, value: str | None) -> bool:
        if valid and value is not None:
            return check(value)
        return False

    return matcher


def _always_true(valid: bool, value: str | None) -> bool:
    return True


def _exists(valid: bool, value: str | None) -> bool:
    return valid


def _does_not_exist(valid: bool, value: str | None) -> bool:
    return not valid


def _raiser(message: str) -> Matcher:
    """An evaluator that always fails with NFD's error."""

    def matcher(valid: bool, value: str | None) -> bool:
        raise RuleError(message)

    return matcher


def _value_raiser(message: str) -> Callable[[str], bool]:
    """A value check that always fails with NFD's error (checked on a value only)."""

    def check(value: str) -> bool:
        raise RuleError(message)

    return check


def _value_check(expr: MatchExpression) -> Callable[[str], bool]:
    """The check of a present element's value for the ops that read values."""
    op, values = expr.op, expr.value
    quoted = go_quote(op)

    if op in ("In", "NotIn", "InRegexp") and not values:
        return _value_raiser(
            f"invalid expression, 'value' field must be non-empty for Op {quoted}"
        )
    if op == "In":
        wanted = frozenset(values)
        return wanted.__contains__
    if op == "NotIn":
        unwanted = frozenset(values)
        return lambda value: value not in unwanted
    if op == "InRegexp":
        return _regex_check(expr)
    if op in ("Gt", "Ge", "Lt", "Le"):
        return _compare_check(expr)
    if op in ("GtLt", "GeLe"):
        return _range_check(expr)
    if values:
        return _value_raiser(
            f"invalid expression, 'value' field must be empty for Op {quoted} "
            f"(have {go_list(values)})"
        )
    if op == "IsTrue":
        return lambda value: value == "true"
    return lambda value: value == "false"


def _regex_check(expr: MatchExpression) -> Callable[[str], bool]:
    """InRegexp: any pattern found anywhere in the value (RE2, unanchored)."""
    try:
        patterns = [compile_regex(v) for v in expr.value]
    except re2.error:
        return _value_raiser(
            "invalid expressiom, 'value' field must only contain valid regexps for "
            f"Op {go_quote(expr.op)} (have {go_list(expr.value)})"
        )
    results: dict[str, bool] = {}

    def check(value: str) -> bool:
        found = results.get(value)
        if found is None:
            found = any(p.search(value) is not None for p in patterns)
            if len(results) >= _REGEX_RESULTS_MAX:
                results.clear()
            results[value] = found
        return found

    return check


def _type_error(expr: MatchExpression) -> Callable[[str], bool]:
    return _value_raiser(
        f"invalid expression, 'type' field only accepts {go_quote(TYPE_VERSION)} "
        f"value for Op {go_quote(expr.op)} (have {go_quote(expr.type)})"
    )


def _compare_check(expr: MatchExpression) -> Callable[[str], bool]:
    """Gt, Ge, Lt, Le against exactly one integer or version."""
    op, values = expr.op, expr.value
    if len(values) != 1:
        return _value_raiser(
            "invalid expression, 'value' field must contain exactly one element for "
            f"Op {go_quote(op)} (have {go_list(values)})"
        )
    if expr.type not in ("", TYPE_VERSION):
        return _type_error(expr)

    compare = _ORDER[op]
    parse: Callable[[str], Any] = atoi if expr.type == "" else parse_version
    kind = "number" if expr.type == "" else "version"
    right = parse(values[0])

    def check(value: str) -> bool:
        left = parse(value)
        if left is None:
            raise RuleError(f"not a {kind} {go_quote(value)}")
        if right is None:
            raise RuleError(f"not a {kind} {go_quote(values[0])} in {expr}")
        return compare(left, right)

    return check


def _range_check(expr: MatchExpression) -> Callable[[str], bool]:
    """GtLt and GeLe against exactly two integers or versions."""
    op, values = expr.op, expr.value
    if len(values) != 2:
        return _value_raiser(
            "invalid expression, 'value' field must contain exactly two elements "
            f"for Op {go_quote(op)} (have {go_list(values)})"
        )
    if expr.type not in ("", TYPE_VERSION):
        return _type_error(expr)

    inclusive = op == "GeLe"
    is_int = expr.type == ""
    parse: Callable[[str], Any] = atoi if is_int else parse_version
    kind = "number" if is_int else "version"
    bounds = [parse(v) for v in values]

    def check(value: str) -> bool:
        item = parse(value)
        if item is None:
            raise RuleError(f"not a {kind} {go_quote(value)}")
        for bound, text in zip(bounds, values, strict=True):
            if bound is None:
                raise RuleError(f"not a {kind} {go_quote(text)} in {expr}")
        low, high = bounds
        if is_int and low >= high:
            raise RuleError(
                "invalid expression, value[0] must be less than Value[1] for Op "
                f"{go_quote(op)} (have {go_list(values)})"
            )
        if inclusive:
            return bool(low <= item <= high)
        return bool(low < item < high)

    return check


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "Gt": lambda a, b: a > b,
    "Ge": lambda a, b: a >= b,
    "Lt": lambda a, b: a < b,
    "Le": lambda a, b: a <= b,
}
