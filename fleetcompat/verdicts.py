"""One spec on one host: NFD's engine, its verdict, and why.

`evaluate_pair` runs a spec's compatibility sets on a (projected) host with the
rule engine, explains each failing rule (`fleetcompat.explain`), and reads the
sets' verdicts as one answer with `holds`: sets without a weight are
requirements that must all hold, sets with a weight are node-affinity
preferences of which at least one must hold. `_blocker` names the one change
that would make the image run, when there is just one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fleetcompat.errors import RuleError
from fleetcompat.explain import explain_rule, fix_count, single_fix
from fleetcompat.store import EvalResult

if TYPE_CHECKING:
    from fleetcompat.features import Features
    from fleetcompat.spec import Spec

COMPATIBLE = "compatible"
INCOMPATIBLE = "incompatible"
ERROR = "error"
NOT_EVALUATED = "not-evaluated"
VERDICTS = (COMPATIBLE, INCOMPATIBLE, ERROR, NOT_EVALUATED)
"""Every verdict a host x image cell can have."""


def evaluate_pair(
    spec: Spec, features: Features, projection: str, artifact: str
) -> EvalResult:
    """One spec on one (projected) host with NFD's engine, explained."""
    from fleetcompat.validate import validate

    try:
        results = validate(spec, features)
    except RuleError as exc:
        return EvalResult(
            projection,
            artifact,
            ERROR,
            "E" * len(spec.compatibilities),
            "",
            str(exc),
            {},
        )

    sets: list[dict[str, Any]] = []
    letters = []
    for compatibility, result in zip(spec.compatibilities, results, strict=True):
        failing = [
            explain_rule(rule, features)
            for rule, outcome in zip(compatibility.rules, result.rules, strict=True)
            if not outcome.is_match
        ]
        for rule in failing:
            rule["count"] = fix_count(rule)
        letters.append("I" if failing else "C")
        sets.append({"ok": not failing, "rules": failing})

    weights = [c.weight for c in spec.compatibilities]
    compatible = holds(letters, weights)
    blocker = "" if compatible else _blocker(sets, weights)
    verdict = COMPATIBLE if compatible else INCOMPATIBLE
    return EvalResult(
        projection, artifact, verdict, "".join(letters), blocker, "", {"sets": sets}
    )


def holds(letters: Sequence[str], weights: Sequence[int]) -> bool:
    """Whether an image can run, given each compatibility set's verdict letter.

    Sets without a weight are requirements: all must hold. Sets with a weight
    are node-affinity preferences (NFD's "preferred" and "fallback"): when there
    are some, at least one must hold. A spec with no sets holds.
    """
    pairs = list(zip(letters, weights, strict=True))
    required = [letter == "C" for letter, w in pairs if not w]
    preferred = [letter == "C" for letter, w in pairs if w]
    return all(required) and (not preferred or any(preferred))


def _blocker(sets: Sequence[Mapping[str, Any]], weights: Sequence[int]) -> str:
    """The one requirement whose change would make the image hold, if just one."""
    failing_required = [
        entry
        for entry, w in zip(sets, weights, strict=True)
        if not w and not entry["ok"]
    ]
    preferred = [entry for entry, w in zip(sets, weights, strict=True) if w]
    candidates = [failing_required] if failing_required else []
    if preferred and not any(entry["ok"] for entry in preferred):
        if failing_required:
            return ""  # a required set and a preferred one both fail: two things
        candidates = [[entry] for entry in preferred]
    for group in candidates:
        rules = [rule for entry in group for rule in entry["rules"]]
        item = single_fix(rules)
        if item is not None:
            return str(item["needs"])
    return ""
