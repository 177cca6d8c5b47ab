"""NFD's expression semantics: its own test tables, then the cases they miss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetcompat.errors import RuleError
from fleetcompat.rules import engine
from fleetcompat.rules.expression import MatchExpression, atoi, parse_version

DATA = Path(__file__).parent / "data" / "rules"


def _table(name: str, key: str) -> list[Any]:
    return list(yaml.safe_load((DATA / name).read_text())[key])


def _cases(name: str, key: str, id_key: str = "id") -> Any:
    return pytest.mark.parametrize(
        "case", _table(name, key), ids=lambda c: str(c.get(id_key, c.get("op")))
    )


def _expr(case: dict[str, Any]) -> MatchExpression:
    return MatchExpression(
        case["op"], tuple(case.get("value") or ()), case.get("type") or ""
    )


def _outcome(run: Any) -> Any:
    """The call's result, or "error" when it raises RuleError."""
    try:
        return run()
    except RuleError:
        return "error"


@_cases("nfd_expression.yaml", "evaluate")
def test_nfd_evaluate_match_expression(case: dict[str, Any]) -> None:
    expr = _expr(case)

    outcome = _outcome(lambda: expr.evaluate(case["valid"], case["input"]))

    assert outcome == ("error" if case.get("error") else case["result"])


@_cases("nfd_expression.yaml", "flags")
def test_nfd_evaluate_against_flags(case: dict[str, Any]) -> None:
    expr = _expr(case)
    flags = set(case["flags"]) if case["flags"] is not None else None

    outcome = _outcome(lambda: engine.match_keys(((case["element"], expr),), flags)[0])

    assert outcome == ("error" if case["error"] else case["result"])


@_cases("nfd_expression.yaml", "attributes")
def test_nfd_evaluate_against_attributes(case: dict[str, Any]) -> None:
    expr = _expr(case)

    outcome = _outcome(
        lambda: engine.match_values(
            ((case["element"], expr),), case["attributes"], fail_fast=True
        )[0]
    )

    assert outcome == ("error" if case["error"] else case["result"])


def _set(case: dict[str, Any]) -> tuple[tuple[str, MatchExpression], ...]:
    return tuple((name, _expr(e)) for name, e in case["expressions"].items())


def _flags(case: dict[str, Any]) -> set[str] | None:
    return set(case["flags"]) if case.get("flags") is not None else None


def _check(case: dict[str, Any], run: Any) -> None:
    if case.get("error"):
        with pytest.raises(RuleError):
            run()
        return
    result, output = run()[:2]
    assert result == case["result"]
    assert output == case["output"]


@_cases("nfd_expression_api.yaml", "match_keys")
def test_nfd_match_keys(case: dict[str, Any]) -> None:
    _check(case, lambda: engine.match_keys(_set(case), _flags(case)))


@_cases("nfd_expression_api.yaml", "match_values")
def test_nfd_match_values(case: dict[str, Any]) -> None:
    _check(case, lambda: engine.match_values(_set(case), case["attributes"], True))


@_cases("nfd_expression_api.yaml", "match_instances")
def test_nfd_match_instances(case: dict[str, Any]) -> None:
    _check(case, lambda: engine.match_instances(_set(case), case["instances"], True))


@_cases("nfd_expression_api.yaml", "match_key_names")
def test_nfd_match_key_names(case: dict[str, Any]) -> None:
    expr = _expr(case["expression"])
    _check(case, lambda: engine.match_key_names(expr, _flags(case)))


@_cases("nfd_expression_api.yaml", "match_value_names")
def test_nfd_match_value_names(case: dict[str, Any]) -> None:
    expr = _expr(case["expression"])
    _check(case, lambda: engine.match_value_names(expr, case["attributes"]))


@_cases("nfd_expression_api.yaml", "match_instance_attribute_names")
def test_nfd_match_instance_attribute_names(case: dict[str, Any]) -> None:
    expr = _expr(case["expression"])
    _check(case, lambda: engine.match_instance_attribute_names(expr, case["instances"]))


@_cases("nfd_expression_api.yaml", "match_multi")
def test_nfd_match_multi(case: dict[str, Any]) -> None:
    _check(
        case,
        lambda: engine.match_multi(
            _set(case),
            _flags(case),
            case.get("attributes"),
            case.get("instances"),
            fail_fast=True,
        ),
    )


@_cases("nfd_expression_api.yaml", "match_names_multi")
def test_nfd_match_names_multi(case: dict[str, Any]) -> None:
    expr = _expr(case["expression"])
    _check(
        case,
        lambda: engine.match_names_multi(
            expr, _flags(case), case.get("attributes"), case.get("instances")
        ),
    )


def _kind_ids(case: dict[str, Any]) -> str:
    return f"{case['op'] or 'MatchAny'}{case['value']}"


@pytest.mark.parametrize("kind", ["missing", "flag", "attribute", "instance"])
@pytest.mark.parametrize(
    "case", _table("extra_expression.yaml", "ops_by_kind"), ids=_kind_ids
)
def test_every_op_against_each_kind_of_element(case: dict[str, Any], kind: str) -> None:
    mes = (("el", _expr(case)),)
    flags = {"el"} if kind == "flag" else None
    attributes = {"el": "5", "other": "x"} if kind == "attribute" else None
    instances = [{"el": "5"}] if kind == "instance" else None
    if kind == "missing":
        attributes = {"other": "x"}

    outcome = _outcome(
        lambda: engine.match_multi(mes, flags, attributes, instances, False)[0]
    )

    assert outcome == case[kind]


def _compare(case: dict[str, Any]) -> Any:
    expr = MatchExpression(case["op"], tuple(case["value"]), case.get("type", ""))
    return _outcome(lambda: expr.evaluate(True, case["input"]))


@_cases("extra_expression.yaml", "versions")
def test_version_comparisons(case: dict[str, Any]) -> None:
    case.setdefault("type", "version")

    assert _compare(case) == case["result"]


@_cases("extra_expression.yaml", "integers")
def test_integer_comparisons_follow_go_atoi(case: dict[str, Any]) -> None:
    assert _compare(case) == case["result"]


@_cases("extra_expression.yaml", "regexes")
def test_inregexp_is_an_unanchored_re2_search(case: dict[str, Any]) -> None:
    case["op"] = "InRegexp"

    assert _compare(case) == case["result"]


def test_missing_element_makes_notin_false() -> None:
    expr = MatchExpression("NotIn", ("a",))

    assert expr.evaluate(False, "") is False


def test_errors_use_nfd_wording() -> None:
    with pytest.raises(RuleError, match=r'invalid Op "Bogus"'):
        MatchExpression("Bogus").evaluate(False, None)
    with pytest.raises(RuleError, match=r'not a number "1\.0"'):
        MatchExpression("Lt", ("2",)).evaluate(True, "1.0")
    with pytest.raises(RuleError, match=r"must contain exactly two elements"):
        MatchExpression("GtLt", ("1",)).evaluate(True, "1")


def test_expression_string_is_nfds() -> None:
    assert str(MatchExpression("In", ("a", "b"))) == '{op: "In", value: ["a" "b"]}'
    assert str(MatchExpression("Exists")) == '{op: "Exists"}'


@pytest.mark.parametrize(
    ("text", "number"),
    [("+5", 5), ("-0", 0), ("12", 12), ("1e3", None), ("", None), ("--1", None)],
)
def test_atoi_accepts_signed_decimal_ascii_only(text: str, number: int | None) -> None:
    assert atoi(text) == number


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("5.15.0-91-generic", (5, 15, 0)),
        ("v6.1", (6, 1, 0)),
        ("1.0.0-rc.1+b.2", (1, 0, 0)),
        ("18446744073709551616", None),
        ("1..2", None),
        ("-11", None),
        ("v", None),
    ],
)
def test_versions_parse_leniently_without_prerelease(
    text: str, version: tuple[int, int, int] | None
) -> None:
    assert parse_version(text) == version


def test_nfd_compile_regexp_caches_by_pattern() -> None:
    import re2

    from fleetcompat.rules.expression import compile_regex

    first = compile_regex("^foo-[0-9]+$")
    again = compile_regex("^foo-[0-9]+$")
    other = compile_regex("^bar$")

    assert first is again
    assert first.search("foo-42") is not None
    assert first.search("bar") is None
    assert other is not first
    with pytest.raises(re2.error):
        compile_regex("[invalid(")
