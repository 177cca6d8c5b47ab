"""NFD's rule engine: match flags, attributes and instances, terms, rules.

A line-by-line port of `MatchMulti`, `MatchNamesMulti`, `evaluateFeatureMatcher` and
`ExecuteGroupRule` from NFD's `pkg/apis/nfd/nodefeaturerule/`, keeping the quirks
that change what users see:

- a feature is looked up by its lower-cased name in each of the three maps, and a
  term on a feature in none of them is false, never an error;
- flags and attributes of one name are matched as a union (DoesNotExist must hold in
  both), instances separately (one instance must satisfy every expression);
- `matchName` is only evaluated when the term's expressions matched, and a term with
  no `matchExpressions` inherits the previous term's outcome for that decision;
- with `fail_fast=False` (what `nfd compat validate-node` uses) every expression is
  evaluated, and the expressions that held are collected per term.

Expression sets are evaluated in the spec's order. NFD walks a Go map, whose order is
random, so with `fail_fast=True` and two broken expressions NFD may report either
error or none; we always evaluate in the order written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from fleetcompat.errors import RuleError
from fleetcompat.rules.expression import MatchExpression
from fleetcompat.spec import FeatureMatcherTerm, GroupRule

NAME = "Name"
VALUE = "Value"

Element = dict[str, str]
"""A matched element: {Name} for a flag, {Name, Value} for an attribute, or an
instance's attribute map."""

ExpressionSet = Sequence[tuple[str, MatchExpression]]


class FeatureLookup(Protocol):
    """What the engine reads of a host's features (fleetcompat.features.Features)."""

    @property
    def flags(self) -> Mapping[str, set[str]]: ...

    @property
    def attributes(self) -> Mapping[str, Mapping[str, str]]: ...

    @property
    def instances(self) -> Mapping[str, Sequence[Mapping[str, str]]]: ...


@dataclass(frozen=True)
class MatchedTerm:
    """The parts of one term that held on the host (NFD's MatchedFeaturesTerms).

    `feature` is lower-cased, as NFD records it; `expressions` maps element names to
    the expressions that held (None when the term had no matchExpressions).
    """

    feature: str
    expressions: dict[str, MatchExpression] | None
    match_name: MatchExpression | None


@dataclass
class FeatureStatus:
    """The outcome of one list of terms (NFD's MatchFeatureStatus)."""

    matched_features: dict[str, dict[str, list[Element]]] = field(default_factory=dict)
    matched_terms: list[MatchedTerm] = field(default_factory=list)


@dataclass
class MatchStatus:
    """The outcome of one rule: matchFeatures, each matchAny element, the verdict."""

    is_match: bool = False
    features: FeatureStatus | None = None
    match_any: list[FeatureStatus | None] = field(default_factory=list)


@dataclass
class RuleOutput:
    """What executing a rule gives: vars (None when it did not match) and status."""

    vars: dict[str, str] | None
    status: MatchStatus
    labels: dict[str, str] | None = None


def _by_name(element: Element) -> str:
    return element.get(NAME, "")


def _element_error(name: str, exc: RuleError) -> RuleError:
    return RuleError(f"element {name!r}: {exc}")


def match_keys(
    mes: ExpressionSet, keys: set[str] | None
) -> tuple[bool, list[Element] | None, dict[str, MatchExpression] | None]:
    """NFD's MatchGetKeys: every expression against a set of flag names.

    Kept for NFD's test tables (TestMatchKeys): only tests call it.
    """
    keys = keys or set()
    elements: list[Element] = []
    matched: dict[str, MatchExpression] = {}
    for name, expr in mes:
        try:
            ok = expr.matcher(name in keys, None)
        except RuleError as exc:
            raise _element_error(name, exc) from None
        if not ok:
            return False, None, None
        elements.append({NAME: name})
        matched[name] = expr
    elements.sort(key=_by_name)
    return True, elements, matched


def match_values(
    mes: ExpressionSet,
    values: Mapping[str, str] | None,
    fail_fast: bool,
    want_elements: bool = True,
) -> tuple[bool, list[Element] | None, dict[str, MatchExpression] | None]:
    """NFD's MatchGetValues: every expression against one attribute map."""
    values = values or {}
    elements: list[Element] = []
    matched: dict[str, MatchExpression] = {}
    is_match = True
    for name, expr in mes:
        value = values.get(name)
        try:
            ok = expr.matcher(value is not None, "" if value is None else value)
        except RuleError as exc:
            raise _element_error(name, exc) from None
        if ok:
            if want_elements:
                elements.append({NAME: name, VALUE: values.get(name, "")})
            matched[name] = expr
        else:
            if fail_fast:
                return False, None, None
            is_match = False
    elements.sort(key=_by_name)
    return is_match, elements, matched


def match_instances(
    mes: ExpressionSet,
    instances: Sequence[Mapping[str, str]] | None,
    fail_fast: bool,
    want_elements: bool = True,
) -> tuple[bool, list[Element], dict[str, MatchExpression]]:
    """NFD's MatchGetInstances: the instances that satisfy every expression.

    The expressions reported as held are the union over all instances, so an
    expression shows as held when it held on any instance.
    """
    elements: list[Element] = []
    matched: dict[str, MatchExpression] = {}
    is_match = False
    for instance in instances or ():
        ok, _, held = match_values(mes, instance, fail_fast, want_elements=False)
        if ok:
            is_match = True
            if want_elements:
                elements.append(dict(instance))
        if held:
            matched.update(held)
    return is_match, elements, matched


def _names(
    expr: MatchExpression, names: Mapping[str, str] | set[str], with_value: bool
) -> list[Element]:
    """The elements whose name satisfies `expr` (NFD's MatchKeyNames/ValueNames)."""
    found: list[Element] = []
    for name in names:
        try:
            ok = expr.matcher(True, name)
        except RuleError as exc:
            raise _element_error(name, exc) from None
        if ok:
            if with_value:
                assert isinstance(names, Mapping)
                found.append({NAME: name, VALUE: names[name]})
            else:
                found.append({NAME: name})
    found.sort(key=_by_name)
    return found


def match_key_names(
    expr: MatchExpression, keys: set[str] | None
) -> tuple[bool, list[Element]]:
    """NFD's MatchKeyNames: the flag names that satisfy `expr`.

    Kept for NFD's test tables (TestMatchKeyNames): only tests call it.
    """
    found = _names(expr, keys or set(), with_value=False)
    return bool(found), found


def match_value_names(
    expr: MatchExpression, values: Mapping[str, str] | None
) -> tuple[bool, list[Element]]:
    """NFD's MatchValueNames: the attribute names that satisfy `expr`.

    Kept for NFD's test tables (TestMatchValueNames): only tests call it.
    """
    found = _names(expr, values or {}, with_value=True)
    return bool(found), found


def match_instance_attribute_names(
    expr: MatchExpression, instances: Sequence[Mapping[str, str]] | None
) -> tuple[bool, list[Element]]:
    """NFD's MatchInstanceAttributeNames: instances with a name satisfying `expr`."""
    found: list[Element] = []
    for instance in instances or ():
        if _names(expr, instance, with_value=True):
            found.append(dict(instance))
    return bool(found), found


def match_multi(
    mes: ExpressionSet,
    keys: set[str] | None,
    values: Mapping[str, str] | None,
    instances: Sequence[Mapping[str, str]] | None,
    fail_fast: bool,
    want_elements: bool = True,
) -> tuple[bool, list[Element], dict[str, MatchExpression]]:
    """NFD's MatchMulti: expressions against flags, attributes and instances.

    `None` stands for a kind the feature does not have (Go's nil map).
    """
    elements: list[Element] = []
    matched: dict[str, MatchExpression] = {}
    is_match = keys is not None or values is not None

    for name, expr in mes:
        held_key = held_value = False
        try:
            if keys is not None:
                held_key = expr.matcher(name in keys, None)
                if held_key:
                    if want_elements:
                        elements.append({NAME: name})
                    matched[name] = expr
                elif expr.op == "DoesNotExist":
                    is_match = False
                    if not fail_fast:
                        continue
                    elements, matched = [], {}
                    break
            if values is not None:
                value = values.get(name)
                held_value = expr.matcher(
                    value is not None, "" if value is None else value
                )
                if held_value:
                    if want_elements:
                        elements.append({NAME: name, VALUE: values.get(name, "")})
                    matched[name] = expr
                elif expr.op == "DoesNotExist":
                    is_match = False
                    if not fail_fast:
                        continue
                    elements, matched = [], {}
                    break
        except RuleError as exc:
            raise _element_error(name, exc) from None
        if not held_key and not held_value:
            is_match = False
            if not fail_fast:
                continue
            elements, matched = [], {}
            break
    if want_elements:
        elements.sort(key=_by_name)

    if instances:
        held, instance_elements, instance_matched = match_instances(
            mes, instances, fail_fast, want_elements
        )
        is_match = is_match or held
        if want_elements:
            elements.extend(instance_elements)
        matched.update(instance_matched)
    return is_match, elements, matched


def match_names_multi(
    expr: MatchExpression,
    keys: set[str] | None,
    values: Mapping[str, str] | None,
    instances: Sequence[Mapping[str, str]] | None,
) -> tuple[bool, list[Element]]:
    """NFD's MatchNamesMulti: `expr` against every element name of every kind."""
    found = _names(expr, keys or set(), with_value=False)
    found.extend(_names(expr, values or {}, with_value=True))
    found.sort(key=_by_name)
    found.extend(match_instance_attribute_names(expr, instances)[1])
    return bool(found), found


def evaluate_terms(
    terms: Sequence[FeatureMatcherTerm],
    features: FeatureLookup,
    fail_fast: bool,
    want_elements: bool = True,
) -> tuple[bool, FeatureStatus | None]:
    """NFD's evaluateFeatureMatcher: all terms (a logical AND) against the host.

    Returns (matched, status); status is None only when fail_fast stops at a
    missing feature, as in NFD.
    """
    is_match = True
    term_match = True
    status = FeatureStatus()
    flags, attributes, instances = (
        features.flags,
        features.attributes,
        features.instances,
    )

    for term in terms:
        name = term.feature.lower()
        domain, _, short = term.feature.partition(".")
        if not _:
            domain, short = name, ""
        by_domain = status.matched_features.setdefault(domain, {})

        keys = flags.get(name)
        values = attributes.get(name)
        items = instances.get(name)
        if keys is None and values is None and items is None:
            if fail_fast:
                return False, None
            is_match = False
            continue

        elements: list[Element] = []
        held_expressions: dict[str, MatchExpression] | None = None
        held_name: MatchExpression | None = None
        try:
            if term.match_expressions is not None:
                term_match, elements, held_expressions = match_multi(
                    term.match_expressions,
                    keys,
                    values,
                    items,
                    fail_fast,
                    want_elements,
                )
            if term_match and term.match_name is not None:
                term_match, named = match_names_multi(
                    term.match_name, keys, values, items
                )
                elements = elements + named
                if term_match:
                    held_name = term.match_name
        except RuleError as exc:
            raise RuleError(f"feature {term.feature!r}: {exc}") from None

        if want_elements:
            by_domain.setdefault(short, []).extend(elements)
        if held_name is not None or held_expressions:
            status.matched_terms.append(MatchedTerm(name, held_expressions, held_name))

        if not term_match:
            if fail_fast:
                return False, status
            is_match = False
    return is_match, status


def execute_rule(
    rule: GroupRule, features: FeatureLookup, fail_fast: bool
) -> RuleOutput:
    """NFD's ExecuteGroupRule (and Execute, for labels): run one rule on a host.

    Raises RuleError naming the rule, the feature and the element when an
    expression or a template fails.
    """
    try:
        return _execute(rule, features, fail_fast)
    except RuleError as exc:
        raise RuleError(f"rule {rule.name!r}: {exc}") from None


def _execute(rule: GroupRule, features: FeatureLookup, fail_fast: bool) -> RuleOutput:
    has_templates = bool(rule.vars_template or rule.labels_template)
    status = MatchStatus()
    variables: dict[str, str] = {}
    labels: dict[str, str] = {}
    any_match = False
    feature_match = False

    if rule.match_any:
        for element in rule.match_any:
            held, element_status = evaluate_terms(
                element.match_features, features, fail_fast, has_templates
            )
            if held:
                any_match = True
                if not has_templates and fail_fast:
                    break
                assert element_status is not None
                _expand(rule, element_status, variables, labels)
            status.match_any.append(element_status)
        if not any_match and fail_fast:
            return RuleOutput(None, status)

    if rule.match_features:
        feature_match, status.features = evaluate_terms(
            rule.match_features, features, fail_fast, has_templates
        )
        if not feature_match:
            return RuleOutput(None, status)
        assert status.features is not None
        _expand(rule, status.features, variables, labels)

    variables.update(rule.vars)
    labels.update(rule.labels)
    status.is_match = (not rule.match_any or any_match) and (
        not rule.match_features or feature_match
    )
    return RuleOutput(variables, status, labels)


def _expand(
    rule: GroupRule,
    status: FeatureStatus,
    variables: dict[str, str],
    labels: dict[str, str],
) -> None:
    """Run the rule's templates over the matched elements, into the outputs."""
    if rule.labels_template:
        labels.update(rule.compiled_labels_template.expand(status.matched_features))
    if rule.vars_template:
        variables.update(rule.compiled_vars_template.expand(status.matched_features))
