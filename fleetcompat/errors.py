"""The exceptions fleetcompat raises.

Every error the library raises on purpose derives from `FleetcompatError`; anything
else reaching the CLI is a bug and is shown with its traceback. Outside exceptions
(OSError, YAML and JSON errors, asyncssh errors, timeouts) are translated where they
enter, with the file, host, image or line they concern::

    FleetcompatError
    ├── InputError            bad input from the user: a file, an option, a value
    │   ├── InventoryError    an inventory that cannot be read or lacks keys
    │   ├── FeaturesError     a features file (NodeFeature, nfd export, probe output)
    │   ├── SpecError         a compatibility spec or rule that cannot be parsed
    │   └── LayoutError       an OCI layout directory that is not one
    ├── RuleError             NFD raises it while evaluating a rule (bad op, count,
    │                         regex, number, template); names rule, feature, element
    ├── CollectError          one host could not be collected (carries the outcome)
    └── StoreError            the database cannot be opened, is not ours, or is newer

The CLI maps `InputError` to the exit code for user errors, and the others to theirs;
see `fleetcompat.cli.main.ExitCode`.
"""

from __future__ import annotations


class FleetcompatError(Exception):
    """Base of every error fleetcompat raises on purpose."""


class InputError(FleetcompatError):
    """Bad input from the user: the message names the file, option or line."""


class InventoryError(InputError):
    """An inventory file that cannot be read, parsed, or lacks required keys."""


class FeaturesError(InputError):
    """A features source (NodeFeature, nfd export, probe output) that is malformed."""


class SpecError(InputError):
    """A compatibility spec, NodeFeatureRule or NodeFeatureGroup that is malformed."""


class LayoutError(InputError):
    """A path that is not a readable OCI image layout."""


class RuleError(FleetcompatError):
    """An error NFD raises while evaluating a rule; the message names where."""


class CollectError(FleetcompatError):
    """A host that could not be collected; `outcome` is its machine-readable kind."""

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


class StoreError(FleetcompatError):
    """The database cannot be opened or is not a fleetcompat database."""
