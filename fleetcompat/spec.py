"""NFD's image-compatibility spec, read exactly as `nfd compat validate-node` reads it.

The model is `api/image-compatibility/v1alpha1/spec.go` (Spec, Compatibility) over
NFD's GroupRule (`api/nfd/v1alpha1/types.go`). NFD parses with sigs.k8s.io/yaml:
YAML (go-yaml v2 scalar rules) turned into JSON and decoded by Go's encoding/json.
This module reproduces what users can observe of that:

- unknown fields are ignored and field names match case-insensitively;
- a null leaves a field at its zero value;
- a YAML number or boolean where a string is expected becomes that string as Go
  prints it (`1.0` -> "1", `y` -> "true", `0x10` -> "16"); any other type mismatch is
  a SpecError naming the spot, e.g. `spec.yaml: compatibilities[0].rules[1].
  matchFeatures[0].matchExpressions.AVX512F.value: expected a list`;
- `matchExpressions: {}` (match anything) differs from an absent one (not checked).

Two kinds of Kubernetes object are also accepted as a source of rules, wrapped as one
compatibility set: a NodeFeatureRule (`spec.rules`) and a NodeFeatureGroup
(`spec.featureGroupRules`).

Deliberate difference: an expression written as `null` inside matchExpressions makes
NFD crash (a nil pointer); here it is a SpecError.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetcompat.documents import load_source, parse_text
from fleetcompat.errors import InputError, RuleError, SpecError
from fleetcompat.features import Features
from fleetcompat.goyaml import GoYamlLoader, go_float32
from fleetcompat.rules.expression import MatchExpression
from fleetcompat.rules.template import Template, compile_template

SPEC_VERSION = "v1alpha1"
ARTIFACT_TYPE = "application/vnd.nfd.image-compatibility.v1alpha1"

_RULE_OBJECTS = ("NodeFeatureRule", "NodeFeatureGroup")
_RULE_LISTS = ("List", "NodeFeatureRuleList", "NodeFeatureGroupList")

ExpressionPairs = tuple[tuple[str, MatchExpression], ...]


@dataclass(frozen=True)
class FeatureMatcherTerm:
    """One term of matchFeatures: a feature, its expressions, and/or matchName.

    `match_expressions` keeps the spec's order; None means the field was absent
    (or null), which NFD treats differently from an empty mapping.
    """

    feature: str
    match_expressions: ExpressionPairs | None = None
    match_name: MatchExpression | None = None


@dataclass(frozen=True)
class MatchAnyElem:
    """One alternative of matchAny: a list of terms that must all hold."""

    match_features: tuple[FeatureMatcherTerm, ...] = ()


@dataclass(frozen=True)
class GroupRule:
    """NFD's GroupRule (and, with labels, a NodeFeatureRule's Rule)."""

    name: str = ""
    vars: Mapping[str, str] = field(default_factory=dict)
    vars_template: str = ""
    match_features: tuple[FeatureMatcherTerm, ...] = ()
    match_any: tuple[MatchAnyElem, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    labels_template: str = ""
    compiled_vars_template: Template = field(init=False, repr=False, compare=False)
    compiled_labels_template: Template = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "compiled_vars_template", compile_template(self.vars_template)
        )
        object.__setattr__(
            self, "compiled_labels_template", compile_template(self.labels_template)
        )

    def terms(self) -> list[FeatureMatcherTerm]:
        """Every term of the rule: matchFeatures, then each matchAny element's."""
        found = list(self.match_features)
        for element in self.match_any:
            found.extend(element.match_features)
        return found


@dataclass(frozen=True)
class Compatibility:
    """One compatibility set: rules that must all match, with weight and tag."""

    rules: tuple[GroupRule, ...] = ()
    weight: int = 0
    tag: str = ""
    description: str = ""


@dataclass(frozen=True)
class Spec:
    """An image-compatibility spec: its version (never checked, as in NFD) and sets."""

    version: str = ""
    compatibilities: tuple[Compatibility, ...] = ()

    def rules(self) -> list[GroupRule]:
        """Every rule of every set, in order."""
        return [rule for c in self.compatibilities for rule in c.rules]

    def feature_references(self) -> dict[str, frozenset[str] | None]:
        """The features and elements the spec reads, by lower-cased feature name.

        None means the whole feature is needed (matchName, or a rule with a
        template). Projecting a host's features onto this (`project_features`)
        gives the same verdicts and per-expression results as the full features.
        """
        needed: dict[str, set[str] | None] = {}
        for rule in self.rules():
            whole = bool(rule.vars_template or rule.labels_template)
            for term in rule.terms():
                name = term.feature.lower()
                if whole or term.match_name is not None:
                    needed[name] = None
                    continue
                elements = needed.setdefault(name, set())
                if elements is not None and term.match_expressions:
                    elements.update(element for element, _ in term.match_expressions)
        return {
            name: None if elements is None else frozenset(elements)
            for name, elements in needed.items()
        }


def check_spec(spec: Spec) -> list[str]:
    """The errors NFD would raise evaluating the spec, found without any host.

    One message per problem, naming the compatibility set, rule, feature and
    element. Each expression is run through its own compiled matcher on a present
    element with the value "0" (an integer and a version both), so a problem is
    reported exactly when the rule engine would raise on every host that has the
    element: an unknown op, a wrong number of values, a bad regexp, an unknown
    type, a bound that never parses, an empty GtLt range. NFD only raises when the
    element is present (and holds a value: a flag never reaches the value checks);
    a spec that fails here fails on every host where it matters. Templates that do
    not parse are reported too, as NFD fails on them whenever the rule matches.
    """
    problems: list[str] = []
    for number, compatibility in enumerate(spec.compatibilities):
        where = f"compatibilities[{number}]"
        if compatibility.tag:
            where += f" (tag {compatibility.tag!r})"
        for index, rule in enumerate(compatibility.rules):
            label = f"rule {rule.name!r}" if rule.name else f"rules[{index}]"
            problems.extend(f"{where}: {label}: {p}" for p in _rule_problems(rule))
    return problems


def _rule_problems(rule: GroupRule) -> list[str]:
    """A rule's template and expression problems, as check_spec words them."""
    problems = []
    for name, template in (
        ("varsTemplate", rule.compiled_vars_template),
        ("labelsTemplate", rule.compiled_labels_template),
    ):
        if template.error is not None:
            problems.append(f"{name}: failed to parse template: {template.error}")

    for term in rule.terms():
        pairs = [(f"element {e!r}", x) for e, x in term.match_expressions or ()]
        if term.match_name is not None:
            pairs.insert(0, ("matchName", term.match_name))
        for spot, expression in pairs:
            error = _expression_problem(expression)
            if error is not None:
                feature = term.feature or '""'
                problems.append(f"feature {feature}: {spot}: {error}")
    return problems


def _expression_problem(expression: MatchExpression) -> str | None:
    """The error the compiled matcher raises for a present element, if any."""
    try:
        expression.matcher(True, "0")
    except RuleError as exc:
        return str(exc)
    return None


def spec_problems(data: bytes, source: str) -> list[str]:
    """Everything NFD would reject in a spec's bytes: parse errors, then check_spec."""
    try:
        parsed = parse_text(data, source, GoYamlLoader, stream_as_list=True)
        spec = parse_spec(parsed, source)
    except InputError as exc:
        return [str(exc)]
    return [f"{source}: {problem}" for problem in check_spec(spec)]


def project_features(
    features: Features,
    references: Mapping[str, frozenset[str] | None],
    *,
    dedup: bool,
) -> Features:
    """The part of `features` that `references` reads; kinds present stay present.

    Feature names are matched exactly against the lower-cased references, as NFD
    looks them up. Instances are cut to the named attributes and keep their number
    and order (NFD's templates see them in discovery order); with `dedup`, equal
    instances are kept once, in a canonical order, which changes no verdict when no
    template reads them.
    """
    projected = Features()
    for name, elements in references.items():
        flags = features.flags.get(name)
        if flags is not None:
            projected.flags[name] = set(flags) if elements is None else flags & elements

        attrs = features.attributes.get(name)
        if attrs is not None:
            projected.attributes[name] = (
                dict(attrs)
                if elements is None
                else {k: v for k, v in attrs.items() if k in elements}
            )

        instances = features.instances.get(name)
        if instances is not None:
            projected.instances[name] = _project_instances(instances, elements, dedup)
    return projected


def _project_instances(
    instances: list[dict[str, str]], elements: frozenset[str] | None, dedup: bool
) -> list[dict[str, str]]:
    """Instances cut to the referenced attributes, duplicates dropped if allowed."""
    if elements is None:
        projected = [dict(i) for i in instances]
    else:
        projected = [{k: v for k, v in i.items() if k in elements} for i in instances]
    if not dedup:
        return projected

    unique: dict[str, dict[str, str]] = {}
    for instance in projected:
        unique.setdefault(repr(sorted(instance.items())), instance)
    return [unique[key] for key in sorted(unique)]


def load_spec(src: str | Path | dict[str, Any]) -> Spec:
    """Read a spec from a path, a YAML/JSON string, or parsed data.

    Also accepts a NodeFeatureRule or NodeFeatureGroup, whose rules become one
    compatibility set, and a `kind: List` of them (`kubectl get nfr -o yaml`) or a
    YAML stream of them (`---` between objects), one set per object. Raises
    SpecError (an InputError) naming the file and the spot when the document is
    not one of these.
    """
    source = str(src) if isinstance(src, str | Path) and "\n" not in str(src) else ""
    if isinstance(src, str) and (src.lstrip()[:1] in ("{", "[")):
        source = ""
    where = source or "spec"
    try:
        data = load_source(src, "spec", GoYamlLoader, stream_as_list=True)
    except SpecError:
        raise
    except InputError as exc:
        raise SpecError(str(exc)) from None
    return parse_spec(data, where)


def parse_spec(data: Any, source: str = "spec") -> Spec:
    """Build a Spec from parsed data; `source` prefixes the error messages."""
    if isinstance(data, dict) and data.get("kind") in _RULE_OBJECTS:
        return _object_spec(data, source)
    if isinstance(data, dict) and data.get("kind") in _RULE_LISTS:
        return _list_spec(data, source)
    fields = _struct(
        data,
        f"{source}: ",
        {"version": _string, "compatibilities": _list_of(_compatibility)},
    )
    return Spec(
        version=fields.get("version", ""),
        compatibilities=tuple(fields.get("compatibilities", ())),
    )


def _object_spec(data: dict[str, Any], source: str) -> Spec:
    """A NodeFeatureRule or NodeFeatureGroup as a one-set spec."""
    kind = data["kind"]
    key, parse = (
        ("rules", _rule)
        if kind == "NodeFeatureRule"
        else ("featureGroupRules", _group_rule)
    )
    meta = _struct(data.get("metadata"), f"{source}: metadata", {"name": _string})
    spec = _struct(data.get("spec"), f"{source}: spec", {key: _list_of(parse)})
    name = meta.get("name", "")
    return Spec(
        version=SPEC_VERSION,
        compatibilities=(
            Compatibility(
                rules=tuple(spec.get(key, ())),
                description=f"{kind} {name}".strip(),
            ),
        ),
    )


def _list_spec(data: dict[str, Any], source: str) -> Spec:
    """A `kind: List` of NodeFeatureRules and NodeFeatureGroups: a set per object."""
    items = data.get("items") or []
    if not isinstance(items, list):
        raise SpecError(f"{source}: items: expected a list, found {_kind(items)}")
    sets: list[Compatibility] = []
    for index, item in enumerate(items):
        where = f"{source}: items[{index}]"
        if not isinstance(item, dict) or item.get("kind") not in _RULE_OBJECTS:
            raise SpecError(f"{where}: expected a NodeFeatureRule or NodeFeatureGroup")
        sets.extend(_object_spec(item, where).compatibilities)
    return Spec(version=SPEC_VERSION, compatibilities=tuple(sets))


# Decoders: each takes (value, where) and returns the Go value, as encoding/json
# would after sigs.k8s.io/yaml has turned the YAML into JSON.

Decoder = Callable[[Any, str], Any]


def _join(where: str, name: str) -> str:
    """A path step: `a` + `b` -> `a.b`, with no dot after the source prefix."""
    return f"{where}{name}" if where.endswith(": ") or not where else f"{where}.{name}"


def _struct(data: Any, where: str, fields: dict[str, Decoder]) -> dict[str, Any]:
    """A Go struct: known fields by name (case-insensitively), the rest ignored."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(
            f"{where.rstrip(': ')}: expected a mapping, found {_kind(data)}"
        )
    folded = {name.lower(): name for name in fields}
    decoded: dict[str, Any] = {}
    for key in sorted(_go_key(k, where) for k in data):
        name = key if key in fields else folded.get(key.lower())
        if name is None:
            continue
        value = _lookup(data, key)
        decoded[name] = fields[name](value, _join(where, name))
    return decoded


def _lookup(data: dict[Any, Any], key: str) -> Any:
    """The value under the key whose Go string form is `key`."""
    if key in data:
        return data[key]
    for original, value in data.items():
        if _go_key(original, "") == key:
            return value
    return None


def _go_key(key: Any, where: str) -> str:
    """A YAML map key as sigs.k8s.io/yaml turns it into a JSON key."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return go_float32(key)
    raise SpecError(f"{where.rstrip(': ')}: unsupported map key {key!r}")


def _string(value: Any, where: str) -> str:
    """A Go string: YAML numbers and booleans become their Go text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float32(value)
    raise SpecError(f"{where}: expected a string, found {_kind(value)}")


def _int(value: Any, where: str) -> int:
    """A Go int (64 bits): whole numbers only, strings are refused."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{where}: expected an integer, found {_kind(value)}")
    if isinstance(value, float):
        if not value.is_integer():
            raise SpecError(f"{where}: expected an integer, found {value!r}")
        value = int(value)
    number = int(value)
    if not -(2**63) <= number < 2**63:
        raise SpecError(f"{where}: {number} does not fit a 64-bit integer")
    return number


def _list_of(item: Decoder) -> Decoder:
    """A Go slice of `item`."""

    def decode(value: Any, where: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise SpecError(f"{where}: expected a list, found {_kind(value)}")
        return [item(v, f"{where}[{i}]") for i, v in enumerate(value)]

    return decode


def _string_map(value: Any, where: str) -> dict[str, str]:
    """A Go map[string]string."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{where}: expected a mapping, found {_kind(value)}")
    return {
        _go_key(k, where): _string(v, f"{where}.{_go_key(k, where)}")
        for k, v in value.items()
    }


def _expression(value: Any, where: str) -> MatchExpression:
    """A MatchExpression: op, value (a list of strings) and type."""
    fields = _struct(
        value,
        where,
        {"op": _string, "value": _list_of(_string), "type": _string},
    )
    return MatchExpression(
        op=fields.get("op", ""),
        value=tuple(fields.get("value", ())),
        type=fields.get("type", ""),
    )


def _optional_expression(value: Any, where: str) -> MatchExpression | None:
    """A *MatchExpression: null is absent."""
    return None if value is None else _expression(value, where)


def _expression_set(value: Any, where: str) -> ExpressionPairs | None:
    """A *MatchExpressionSet: element name -> expression, in the spec's order."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SpecError(f"{where}: expected a mapping, found {_kind(value)}")
    pairs: dict[str, MatchExpression] = {}
    for key, item in value.items():
        name = _go_key(key, where)
        spot = f"{where}.{name}"
        if item is None:
            raise SpecError(f"{spot}: expected an expression, found null")
        pairs[name] = _expression(item, spot)
    return tuple(pairs.items())


def _term(value: Any, where: str) -> FeatureMatcherTerm:
    fields = _struct(
        value,
        where,
        {
            "feature": _string,
            "matchExpressions": _expression_set,
            "matchName": _optional_expression,
        },
    )
    return FeatureMatcherTerm(
        feature=fields.get("feature", ""),
        match_expressions=fields.get("matchExpressions"),
        match_name=fields.get("matchName"),
    )


def _match_any(value: Any, where: str) -> MatchAnyElem:
    fields = _struct(value, where, {"matchFeatures": _list_of(_term)})
    return MatchAnyElem(tuple(fields.get("matchFeatures", ())))


def _rule(value: Any, where: str) -> GroupRule:
    fields = _struct(
        value,
        where,
        {
            "name": _string,
            "vars": _string_map,
            "varsTemplate": _string,
            "labels": _string_map,
            "labelsTemplate": _string,
            "matchFeatures": _list_of(_term),
            "matchAny": _list_of(_match_any),
        },
    )
    return GroupRule(
        name=fields.get("name", ""),
        vars=fields.get("vars", {}),
        vars_template=fields.get("varsTemplate", ""),
        match_features=tuple(fields.get("matchFeatures", ())),
        match_any=tuple(fields.get("matchAny", ())),
        labels=fields.get("labels", {}),
        labels_template=fields.get("labelsTemplate", ""),
    )


def _group_rule(value: Any, where: str) -> GroupRule:
    """A GroupRule, which has no labels: those fields are unknown and ignored."""
    rule = _rule(value, where)
    if not rule.labels and not rule.labels_template:
        return rule
    return GroupRule(
        name=rule.name,
        vars=rule.vars,
        vars_template=rule.vars_template,
        match_features=rule.match_features,
        match_any=rule.match_any,
    )


def _compatibility(value: Any, where: str) -> Compatibility:
    fields = _struct(
        value,
        where,
        {
            "rules": _list_of(_group_rule),
            "weight": _int,
            "tag": _string,
            "description": _string,
        },
    )
    return Compatibility(
        rules=tuple(fields.get("rules", ())),
        weight=fields.get("weight", 0),
        tag=fields.get("tag", ""),
        description=fields.get("description", ""),
    )


def _kind(value: Any) -> str:
    """A short name for a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)
