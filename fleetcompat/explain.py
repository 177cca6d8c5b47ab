"""Plain explanations of why a host fails a compatibility rule, with its values.

NFD reports each expression as OK or FAIL. An operator wants more: what the host
actually has, in words ("kernel 5.4.0, needs >= 5.15", "module vfio_pci not loaded",
"no PCI device with vendor 10de, class 0302"). This module turns a failing term of a
rule into such items, using NFD's own matcher (fleetcompat.rules.engine) to decide
which parts failed:

- on a flag or attribute feature, each failing expression is one item: each is one
  thing to change on the host;
- on an instance feature (pci.device, usb.device, network.device, ...), the whole
  term is one item, because one device must satisfy every expression together; NFD's
  per-expression status can say OK for `vendor` and for `class` while no single
  device has both, and the item says so;
- a feature the host does not report at all is one item for the term.

An item's `count` is how many things must change; `fix_count` adds them up the way
a rule needs them (all of matchFeatures, the cheapest matchAny element).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fleetcompat.errors import RuleError
from fleetcompat.rules.engine import FeatureLookup, evaluate_terms, match_multi
from fleetcompat.rules.expression import MatchExpression
from fleetcompat.spec import FeatureMatcherTerm, GroupRule

Item = dict[str, Any]
"""One thing a host lacks: feature, matcher, expressions, actual, why."""

_DEVICE_NOUNS = {
    "pci.device": "PCI device",
    "usb.device": "USB device",
    "network.device": "network device",
    "network.virtual": "virtual network interface",
    "storage.block": "block device",
    "memory.nv": "NVDIMM device",
}
_ATTRIBUTE_LABELS = {
    "kernel.version": "kernel",
    "kernel.config": "kernel config",
    "system.osrelease": "OS",
    "cpu.model": "CPU",
    "memory.hugepages": "hugepages",
    "memory.numa": "NUMA",
}
_RELATIONS = {"Gt": ">", "Ge": ">=", "Lt": "<", "Le": "<="}
_MAX_SHOWN = 5


def explain_rule(rule: GroupRule, features: FeatureLookup) -> dict[str, Any]:
    """The failing items of a rule that did not match: its terms, its matchAny."""
    items = explain_terms(rule.match_features or (), features)
    alternatives = [
        explain_terms(element.match_features or (), features)
        for element in rule.match_any or ()
    ]
    if alternatives and any(not alt for alt in alternatives):
        alternatives = []  # some matchAny element held: the rule fails elsewhere
    return {"name": rule.name, "items": items, "any": alternatives}


def fix_count(rule_detail: Mapping[str, Any]) -> int:
    """How many things must change for a failing rule to hold (at least one)."""
    count = len(rule_detail["items"])
    alternatives = rule_detail["any"]
    if alternatives:
        count += min(len(alt) for alt in alternatives)
    return max(count, 1)


def single_fix(rules: Sequence[Mapping[str, Any]]) -> Item | None:
    """The one item whose change would make these failing rules hold, if one."""
    if sum(fix_count(rule) for rule in rules) != 1:
        return None
    (rule,) = rules
    if rule["items"]:
        return dict(rule["items"][0])
    for alternative in rule["any"]:
        if len(alternative) == 1:
            return dict(alternative[0])
    return None


def explain_terms(
    terms: Sequence[FeatureMatcherTerm], features: FeatureLookup
) -> list[Item]:
    """The items for every term that fails on the host, in the spec's order."""
    items: list[Item] = []
    for term in terms:
        try:
            held, _ = evaluate_terms([term], features, False, False)
        except RuleError:
            held = False
        if not held:
            items.extend(_term_items(term, features))
    return items


def _term_items(term: FeatureMatcherTerm, features: FeatureLookup) -> list[Item]:
    """One failing term, as the items that would have to change."""
    name = term.feature.lower()
    keys = features.flags.get(name)
    values = features.attributes.get(name)
    instances = features.instances.get(name)
    expressions = list(term.match_expressions or ())

    if keys is None and values is None and instances is None:
        why = f"{term.feature} not reported by this host"
        if name == "rule.matched":
            why = "needs the vars of an earlier rule, which did not match"
        return [_item(term, expressions, "absent", why)]
    if instances is not None and keys is None and values is None:
        return [_instance_item(term, expressions, instances)]

    items = []
    for element, expr in expressions:
        try:
            held, _, _ = match_multi([(element, expr)], keys, values, None, False)
        except RuleError:
            held = False
        if not held:
            items.append(_element_item(term, element, expr, keys, values))
    if not items:
        shown = term.match_name
        why = f"no element of {term.feature} whose name is {_condition('', shown)}"
        if shown is None:
            why = f"{term.feature} does not satisfy every expression together"
        items.append(_item(term, expressions, _names_summary(keys, values), why))
    return items


def _element_item(
    term: FeatureMatcherTerm,
    element: str,
    expr: MatchExpression,
    keys: set[str] | None,
    values: Mapping[str, str] | None,
) -> Item:
    """One failing expression on a flag or attribute feature."""
    feature = term.feature
    present = (keys is not None and element in keys) or (
        values is not None and element in values
    )
    actual = values.get(element) if values is not None else None
    actual_text = actual if actual is not None else ("present" if present else "absent")
    why = _why_element(feature.lower(), element, expr, present, actual)
    return _item(term, [(element, expr)], actual_text, why)


def _why_element(
    feature: str,
    element: str,
    expr: MatchExpression,
    present: bool,
    actual: str | None,
) -> str:
    """The sentence for one failing expression on one element."""
    op = expr.op
    if feature in ("kernel.loadedmodule", "kernel.enabledmodule"):
        verb = "loaded" if feature == "kernel.loadedmodule" else "enabled"
        if op == "Exists":
            return f"module {element} not {verb}"
        if op == "DoesNotExist":
            return f"module {element} is {verb}, must not be"
    if feature == "cpu.cpuid":
        if op == "Exists":
            return f"CPU lacks {element}"
        if op == "DoesNotExist":
            return f"CPU has {element}, must not"

    label = _label(feature, element)
    if op == "Exists":
        return f"{label} not present"
    if op == "DoesNotExist":
        return (
            f"{label} present ({actual}), must be absent"
            if actual
            else (f"{label} present, must be absent")
        )
    if not present:
        return (
            f"{label} unknown: {feature} has no {element}; needs {_condition('', expr)}"
        )
    if actual is None:
        return (
            f"{label} is a flag, has no value to compare; needs {_condition('', expr)}"
        )
    return f"{label} {actual}, needs {_condition('', expr)}"


def _instance_item(
    term: FeatureMatcherTerm,
    expressions: list[tuple[str, MatchExpression]],
    instances: Sequence[Mapping[str, str]],
) -> Item:
    """A failing term on an instance feature: no one instance satisfies it all."""
    feature = term.feature.lower()
    noun = _DEVICE_NOUNS.get(feature, f"{term.feature} instance")
    conditions = [
        f"{element} set" if expr.op == "Exists" else _condition(element, expr)
        for element, expr in expressions
    ]
    if term.match_name is not None:
        conditions.append(f"an attribute named {_condition('', term.match_name)}")
    what = ", ".join(conditions) or "any attributes"
    why = f"no {noun} with {what}" if instances else f"no {noun} at all"

    names = [element for element, _ in expressions]
    seen: list[str] = []
    for instance in instances:
        shown = " ".join(f"{n}={instance[n]}" for n in names if n in instance)
        if shown and shown not in seen:
            seen.append(shown)
    actual = "; ".join(seen[:_MAX_SHOWN]) or (f"{len(instances)} without these")
    if len(seen) > _MAX_SHOWN:
        actual += f"; and {len(seen) - _MAX_SHOWN} more"
    return _item(term, expressions, actual, why)


def _condition(element: str, expr: MatchExpression | None) -> str:
    """An expression in words: `vendor 10de`, `>= 5.15`, `one of a, b`."""
    if expr is None:
        return element
    values = list(expr.value)
    prefix = f"{element} " if element else ""
    op = expr.op
    if op in ("", "Exists"):
        return element or "anything"
    if op == "DoesNotExist":
        return f"no {element}" if element else "absent"
    if op == "In":
        shown = values[0] if len(values) == 1 else "one of " + ", ".join(values)
        return prefix + shown
    if op == "NotIn":
        return prefix + "not " + ", ".join(values)
    if op == "InRegexp":
        return prefix + "matching " + " or ".join(f"/{v}/" for v in values)
    if op in _RELATIONS:
        return f"{prefix}{_RELATIONS[op]} {values[0] if values else '?'}"
    if op == "GtLt" and len(values) == 2:
        return f"{prefix}between {values[0]} and {values[1]} (exclusive)"
    if op == "GeLe" and len(values) == 2:
        return f"{prefix}between {values[0]} and {values[1]}"
    if op == "IsTrue":
        return prefix + "true"
    if op == "IsFalse":
        return prefix + "false"
    return f"{prefix}{op} {values}"


def _label(feature: str, element: str) -> str:
    """How a sentence names an attribute: `kernel`, `OS ID`, `cpu.model.family`."""
    if feature == "kernel.version" and element == "full":
        return "kernel"
    base = _ATTRIBUTE_LABELS.get(feature)
    return f"{base} {element}" if base else f"{feature}.{element}"


def _names_summary(keys: set[str] | None, values: Mapping[str, str] | None) -> str:
    """A short list of the element names a feature has."""
    names = sorted(set(keys or ()) | set(values or {}))
    shown = ", ".join(names[:_MAX_SHOWN])
    return shown + (f" and {len(names) - _MAX_SHOWN} more" if len(names) > 5 else "")


def _item(
    term: FeatureMatcherTerm,
    expressions: Sequence[tuple[str, MatchExpression]],
    actual: str,
    why: str,
) -> Item:
    """An item in the stored, JSON-ready shape."""
    exprs = [
        {"name": element, **expr.to_nfd(), "matcher": "matchExpression"}
        for element, expr in expressions
    ]
    if term.match_name is not None and not expressions:
        exprs.append({"name": "", **term.match_name.to_nfd(), "matcher": "matchName"})
    needs = ", ".join(_condition(element, expr) for element, expr in expressions)
    if not expressions and term.match_name is not None:
        needs = "a name " + _condition("", term.match_name)
    return {
        "feature": term.feature,
        "expressions": exprs,
        "actual": actual,
        "why": why,
        "needs": f"{term.feature}: {needs or 'present'}",
    }
