"""Check one host's features against a spec, as `nfd compat validate-node` does.

A port of NFD's `pkg/client-nfd/compat/node-validator`: compatibility sets are kept
by tag, every rule runs with fail_fast=False, each rule's vars go into the attribute
feature `rule.matched` (shared by all later rules and sets, and created empty even
when a rule did not match), and every expression gets a status by looking it up
among the expressions that held. NFD's quirks in that lookup are kept on purpose:

- the lookup compares the spec's feature name with NFD's lower-cased one, so a term
  written `CPU.cpuid` always shows FAIL rows, even when the rule matches;
- two terms on one feature with equal expressions share one status;
- on instance features an expression shows OK when it held on any instance;
- a matchName after failing expressions is never evaluated and shows FAIL.

`to_nfd_json` prints the results as NFD's `--output-json` does, byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetcompat.features import Features
from fleetcompat.rules.engine import FeatureStatus, MatchedTerm, execute_rule
from fleetcompat.rules.expression import MatchExpression
from fleetcompat.spec import FeatureMatcherTerm, Spec

MATCH_EXPRESSION = "matchExpression"
MATCH_NAME = "matchName"
RULE_MATCHED = "rule.matched"


@dataclass(frozen=True)
class ExpressionResult:
    """One expression of a rule and whether NFD reports it as holding.

    `name` is the element the expression reads ("" for a matchName row);
    `matcher_type` is "matchExpression" or "matchName".
    """

    feature: str
    name: str
    expression: MatchExpression
    matcher_type: str
    is_match: bool

    @property
    def op(self) -> str:
        return self.expression.op

    @property
    def value(self) -> tuple[str, ...]:
        return self.expression.value

    @property
    def type(self) -> str:
        return self.expression.type

    @property
    def label(self) -> str:
        """The Feature column of NFD's table: `feature.element`, or the feature."""
        return f"{self.feature}.{self.name}" if self.name else self.feature

    def to_nfd(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "name": self.name,
            "expression": self.expression.to_nfd(),
            "matcherType": self.matcher_type,
            "isMatch": self.is_match,
        }


@dataclass(frozen=True)
class RuleResult:
    """One rule: its verdict, its matchFeatures rows, and rows per matchAny element."""

    name: str
    is_match: bool
    matched_expressions: list[ExpressionResult]
    matched_any: list[list[ExpressionResult] | None]

    def failing(self) -> list[ExpressionResult]:
        """Every row that shows FAIL, matchFeatures first then matchAny."""
        rows = list(self.matched_expressions)
        for element in self.matched_any:
            rows.extend(element or ())
        return [row for row in rows if not row.is_match]

    def to_nfd(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "isMatch": self.is_match}
        if self.matched_expressions:
            data["matchedExpressions"] = [e.to_nfd() for e in self.matched_expressions]
        if self.matched_any:
            data["matchedAny"] = [
                {"matchedExpressions": _rows(element)} for element in self.matched_any
            ]
        return data


@dataclass(frozen=True)
class CompatibilityResult:
    """One compatibility set's outcome: every rule's result, as NFD reports it."""

    rules: list[RuleResult]
    description: str = ""
    weight: int = 0
    tag: str = ""

    @property
    def is_match(self) -> bool:
        """Whether every rule of the set matched (a set with no rules matches)."""
        return all(rule.is_match for rule in self.rules)

    def to_nfd(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "rules": [rule.to_nfd() for rule in self.rules] if self.rules else None
        }
        if self.description:
            data["description"] = self.description
        if self.weight:
            data["weight"] = self.weight
        if self.tag:
            data["tag"] = self.tag
        return data


def _rows(rows: list[ExpressionResult] | None) -> list[dict[str, Any]] | None:
    return [row.to_nfd() for row in rows] if rows else None


class _Overlay:
    """A host's features with a private `rule.matched`, leaving the original as is."""

    def __init__(self, features: Features) -> None:
        self.flags = features.flags
        self.instances = features.instances
        self.attributes: dict[str, Mapping[str, str]] = dict(features.attributes)
        self._own = False

    def insert_matched(self, variables: Mapping[str, str] | None) -> None:
        """NFD's InsertAttributeFeatures("rule", "matched", vars)."""
        current = self.attributes.get(RULE_MATCHED)
        if current is None or not self._own:
            current = dict(current or {})
            self.attributes[RULE_MATCHED] = current
            self._own = True
        assert isinstance(current, dict)
        current.update(variables or {})


def validate(
    spec: Spec, features: Features, tags: Iterable[str] | None = None
) -> list[CompatibilityResult]:
    """Check `features` against every compatibility set of `spec` (kept by `tags`).

    Returns one result per set kept, in the spec's order. Raises RuleError, naming
    the rule, feature and element, when an expression or template fails, as NFD
    aborts the whole check then. `features` is not changed.
    """
    wanted = list(tags or ())
    host = _Overlay(features)
    results: list[CompatibilityResult] = []
    for compatibility in spec.compatibilities:
        if wanted and compatibility.tag not in wanted:
            continue
        rules: list[RuleResult] = []
        for rule in compatibility.rules:
            output = execute_rule(rule, host, fail_fast=False)
            status = output.status
            rows = _expression_rows(rule.match_features, status.features)
            any_rows: list[list[ExpressionResult] | None] = [
                _expression_rows(element.match_features, element_status)
                for element, element_status in zip(
                    rule.match_any, status.match_any, strict=True
                )
            ]
            rules.append(RuleResult(rule.name, status.is_match, rows, any_rows))
            host.insert_matched(output.vars)
        results.append(
            CompatibilityResult(
                rules,
                compatibility.description,
                compatibility.weight,
                compatibility.tag,
            )
        )
    return results


_Row = tuple[str, str, MatchExpression, str]
_PLANS: dict[int, tuple[Sequence[FeatureMatcherTerm], list[_Row]]] = {}
_PLANS_MAX = 100_000
"""Term lists whose row order is remembered (each entry keeps its terms alive)."""


def _row_plan(terms: Sequence[FeatureMatcherTerm]) -> list[_Row]:
    """The rows of a list of terms in NFD's order; computed once per term list."""
    cached = _PLANS.get(id(terms))
    if cached is not None and cached[0] is terms:
        return cached[1]
    rows: list[_Row] = []
    for term in terms:
        if term.match_expressions is not None:
            for name, expr in term.match_expressions:
                rows.append((term.feature, name, expr, MATCH_EXPRESSION))
        if term.match_name is not None:
            rows.append((term.feature, "", term.match_name, MATCH_NAME))
    rows.sort(key=lambda r: (r[0], r[1], r[2].text))
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()
    _PLANS[id(terms)] = (terms, rows)
    return rows


def _expression_rows(
    terms: Sequence[FeatureMatcherTerm], status: FeatureStatus | None
) -> list[ExpressionResult]:
    """NFD's matchFeatureExpressions: a status for every expression, sorted."""
    held = status.matched_terms if status is not None else []
    results: list[ExpressionResult] = []
    for feature, name, expr, kind in _row_plan(terms):
        if kind == MATCH_EXPRESSION:
            ok = _expression_held(feature, name, expr, held)
        else:
            ok = _name_held(feature, expr, held)
        results.append(ExpressionResult(feature, name, expr, kind, ok))
    return results


def _expression_held(
    feature: str, name: str, expr: MatchExpression, held: list[MatchedTerm]
) -> bool:
    for term in held:
        if term.feature != feature or term.expressions is None:
            continue
        other = term.expressions.get(name)
        if other is not None and other.op == expr.op and other.value == expr.value:
            return True
    return False


def _name_held(feature: str, expr: MatchExpression, held: list[MatchedTerm]) -> bool:
    for term in held:
        if term.feature != feature or term.match_name is None:
            continue
        if term.match_name.op == expr.op and term.match_name.value == expr.value:
            return True
    return False


def to_nfd(results: Sequence[CompatibilityResult]) -> list[dict[str, Any]]:
    """The results as plain data, equal to NFD's JSON output once parsed."""
    return [result.to_nfd() for result in results]


def to_nfd_json(results: Sequence[CompatibilityResult]) -> str:
    """NFD's `--output-json` text: Go's compact encoding/json, HTML-escaped."""
    return go_json(to_nfd(results))


def go_json(data: Any) -> str:
    """Encode as Go's json.Marshal does: compact, with <, >, &, U+2028/9 escaped."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
