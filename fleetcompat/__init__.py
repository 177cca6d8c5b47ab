"""fleetcompat: which hosts of a fleet can run which container images.

The Python API mirrors the `validate` command::

    import fleetcompat

    features = fleetcompat.load_features("node.yaml")
    spec = fleetcompat.load_spec("spec.yaml")
    for result in fleetcompat.validate(spec, features):
        print(result.is_match, result.to_nfd())

Every error raised on purpose derives from `FleetcompatError`.
"""

from __future__ import annotations

from fleetcompat.errors import (
    CollectError,
    FeaturesError,
    FleetcompatError,
    InputError,
    InventoryError,
    LayoutError,
    RuleError,
    SpecError,
    StoreError,
)
from fleetcompat.features import Features, load_features
from fleetcompat.spec import Spec, load_spec
from fleetcompat.validate import (
    CompatibilityResult,
    ExpressionResult,
    RuleResult,
    to_nfd_json,
    validate,
)

__all__ = [
    "CollectError",
    "CompatibilityResult",
    "ExpressionResult",
    "Features",
    "FeaturesError",
    "FleetcompatError",
    "InputError",
    "InventoryError",
    "LayoutError",
    "RuleError",
    "RuleResult",
    "Spec",
    "SpecError",
    "StoreError",
    "load_features",
    "load_spec",
    "to_nfd_json",
    "validate",
]
