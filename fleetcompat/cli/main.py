"""The `fleetcompat` command: parses options, calls the library, prints.

Each command lives in a module of this package beside this one and is registered
below. Commands print data on stdout and diagnostics on stderr, and exit with one of
the `ExitCode` values, the same across commands.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fleetcompat.errors import FleetcompatError, InputError

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

UNWRAPPED_WIDTH = 100_000
"""Console width off a terminal: wide enough that no table line is wrapped."""


class ExitCode(enum.IntEnum):
    """What the exit status of every command means (documented in the README)."""

    OK = 0
    """The command did all it was asked."""
    BUG = 1
    """An unexpected internal error; a traceback was printed."""
    USAGE = 2
    """Bad input: an option, a file, a value. One line on stderr says which."""
    PARTIAL = 3
    """Some hosts or images failed; the output is complete for the rest."""
    INCOMPATIBLE = 4
    """Opt-in: `validate` found an incompatibility, `audit` a regression."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C; what finished before was kept."""


DB_HELP = "SQLite database (default: $FLEETCOMPAT_DB or ./fleetcompat.db)."


def default_db() -> str:
    """The database path used when --db is not given."""
    return os.environ.get("FLEETCOMPAT_DB") or "fleetcompat.db"


def db_option(func: F) -> F:
    """The --db option, shared by every command that uses the store."""
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False),
        default=default_db,
        show_default="fleetcompat.db",
        help=DB_HELP,
    )(func)


def layouts_option(func: F) -> F:
    """The repeatable --oci-layout option of the commands that read images."""
    return click.option(
        "--oci-layout",
        "layouts",
        multiple=True,
        required=True,
        type=click.Path(path_type=Path),
        help="An OCI image layout directory, or a directory of layouts; repeat "
        "for more.",
    )(func)


def output_option(*choices: str, default: str = "table") -> Callable[[F], F]:
    """The --output option with the given formats."""

    def decorate(func: F) -> F:
        return click.option(
            "--output",
            "-o",
            "output",
            type=click.Choice(list(choices)),
            default=default,
            show_default=True,
            help="table for people, json for scripts (one document on stdout).",
        )(func)

    return decorate


def verbosity_options(func: F) -> F:
    """-v/-q on every command: diagnostics on stderr, never on stdout."""

    @click.option("-v", "--verbose", count=True, help="More diagnostics on stderr.")
    @click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
    @wraps(func)
    def wrapper(*args: Any, verbose: int, quiet: bool, **kwargs: Any) -> Any:
        _configure_logging(verbose, quiet)
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _configure_logging(verbose: int, quiet: bool) -> None:
    """Send the library's log records to stderr at the chosen level."""
    if quiet:
        level = logging.ERROR
    else:
        level = [logging.WARNING, logging.INFO][min(verbose, 1)]
        level = logging.DEBUG if verbose > 1 else level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter(debug=verbose > 1))
    root = logging.getLogger("fleetcompat")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class _LineFormatter(logging.Formatter):
    """`fleetcompat: warning: …`, like the one-line errors; -vv adds the module."""

    def __init__(self, debug: bool) -> None:
        super().__init__()
        self.debug = debug

    def format(self, record: logging.LogRecord) -> str:
        where = f" ({record.name})" if self.debug else ""
        text = f"fleetcompat: {record.levelname.lower()}{where}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def print_json(data: Any) -> None:
    """Print one JSON document on stdout."""
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def console(*, highlight: bool = True) -> Console:
    """The rich Console every command prints its tables with, on stdout.

    On a terminal it fits the window, with colour. Piped to a file or to grep it
    neither wraps nor colours, so each row stays one line that names its host.
    """
    from rich.console import Console

    if sys.stdout.isatty():
        return Console(highlight=highlight)
    return Console(
        width=UNWRAPPED_WIDTH,
        no_color=True,
        color_system=None,
        highlight=highlight,
        soft_wrap=True,
    )


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> None:
    """Print a one-line error on stderr and exit."""
    click.echo(f"fleetcompat: error: {message}", err=True)
    sys.exit(int(code))


class _Group(click.Group):
    """The top group: turns our errors into one line and a documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InputError as exc:
            fail(str(exc), ExitCode.USAGE)
        except FleetcompatError as exc:
            fail(str(exc), ExitCode.PARTIAL if _is_partial(exc) else ExitCode.USAGE)
        except KeyboardInterrupt:
            click.echo("fleetcompat: interrupted", err=True)
            sys.exit(int(ExitCode.INTERRUPTED))


def _is_partial(exc: FleetcompatError) -> bool:
    """Whether an error leaves a partial result behind: a host that failed.

    A RuleError that reaches here comes from a spec the user handed in, so it is
    bad input, as `validate` reports it; `evaluate` keeps such errors per image.
    """
    from fleetcompat.errors import CollectError

    return isinstance(exc, CollectError)


@click.group(
    cls=_Group,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="fleetcompat")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Which hosts of a fleet can run which container images.

    fleetcompat reads the image-compatibility specs that Node Feature Discovery
    (NFD) attaches to images, finds them in local OCI layout directories, and checks
    them against the features of every host of a fleet, collected over SSH, with
    NFD's exact semantics. Everything works offline.

    \b
    The nightly job, in one command:
      fleetcompat audit -i inventory.yaml --oci-layout mirror/ --out report/
    \b
    Or stage by stage:
      fleetcompat collect -i inventory.yaml      # hosts -> features, into the db
      fleetcompat images --oci-layout mirror/    # what the mirror holds
      fleetcompat evaluate --oci-layout mirror/  # every host x every image
      fleetcompat report --out report/           # HTML and CSV

    \b
    Exit codes, the same for every command:
      0  success
      1  internal error (a bug: please report the traceback)
      2  bad input or usage; one line on stderr names the file, host or option
      3  partial result: some hosts or images failed, or some cells could
         not be evaluated; the rest is complete
      4  opt-in: incompatible (validate --fail-on-incompatible),
         regressed (audit --fail-on)
      130  interrupted; work finished before was saved
    """
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def _register() -> None:
    """Attach the commands defined in the sibling modules."""
    from importlib import import_module

    for name in ("collect", "discover", "images", "validate", "evaluate"):
        try:
            module = import_module(f"fleetcompat.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"fleetcompat.cli.{name}":
                raise
            continue
        for command in getattr(module, "COMMANDS", []):
            main.add_command(command)


_register()
