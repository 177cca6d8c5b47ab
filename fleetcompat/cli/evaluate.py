"""`fleetcompat evaluate`, `report` and `audit`: every host x every image, and why."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from fleetcompat.cli.collect import collect_options, collection_options, vault_options
from fleetcompat.cli.main import (
    ExitCode,
    db_option,
    default_db,
    layouts_option,
    output_option,
    print_json,
    verbosity_options,
)


def _progress(stage: str, done: int, total: int) -> None:
    """Progress lines on stderr when it is a terminal."""
    if sys.stderr.isatty():
        click.echo(f"\rfleetcompat: {stage} {done}/{total}", err=True, nl=False)
        if done == total:
            click.echo("", err=True)


@click.command()
@layouts_option
@db_option
@output_option("table", "json")
@verbosity_options
def evaluate(layouts: tuple[Path, ...], db: str, output: str) -> None:
    """Check every image's compatibility spec against every host in the database.

    Each image's chosen artifact (per platform, matched to each host's
    architecture) is evaluated with NFD's rules against each host's newest good
    snapshot. Hosts with equal features (as far as a spec reads them) share one
    evaluation, and results unchanged since an earlier run are reused. The run
    is stored; `fleetcompat report` renders it.

    \b
    Examples:
      fleetcompat evaluate --oci-layout mirror/
      fleetcompat evaluate --oci-layout a/ --oci-layout b/ --output json

    \b
    Exit codes:
      0  every cell has an answer (a platform the image lacks is an answer)
      2  a path is not an OCI layout, or the database is not ours
      3  partial: a layout could not be read or has a broken entry, some
         hosts have no snapshot, some images no usable spec, some cells are
         errors, or some hosts' architecture is unknown; stderr says which
    """
    from fleetcompat.evaluate import evaluate_fleet
    from fleetcompat.oci import scan_layouts
    from fleetcompat.store import Store

    catalog = scan_layouts(list(layouts))
    with Store(db, create=False) as store:
        result = evaluate_fleet(store, catalog, progress=_progress)

    if output == "json":
        print_json(result.to_json())
    else:
        _print_evaluation(result, db)
    _exit_if_partial(result)


def _exit_if_partial(result: Any) -> None:
    """Say on stderr what made the run partial, and exit 3 if anything did."""
    problems = result.problems()
    for problem in problems:
        click.echo(f"fleetcompat: partial: {problem}", err=True)
    if problems:
        raise SystemExit(int(ExitCode.PARTIAL))


def _print_evaluation(result: Any, db: str) -> None:
    """The run's cells by verdict, the work it took, and the next command."""
    from fleetcompat.evaluate import plural

    cells = ", ".join(f"{n} {v}" for v, n in result.cells.items())
    click.echo(
        f"run {result.run_id}: {plural(result.hosts, 'host')} x "
        f"{plural(result.images, 'image')}: {cells}"
    )
    click.echo(
        f"{plural(result.evaluations, 'distinct evaluation')} ({result.computed} "
        f"computed, {result.reused} reused) in {result.seconds:.2f}s"
    )
    db_args = "" if db == default_db() else f" --db {shlex.quote(db)}"
    click.echo(f"next: fleetcompat report{db_args} --out report/")


@click.command()
@db_option
@click.option("--run", "run_id", type=int, help="Evaluation run (default: newest).")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for report.html, matrix.csv, results_long.csv, hosts.csv.",
)
@click.option(
    "--long-csv/--no-long-csv",
    default=True,
    show_default=True,
    help="Write results_long.csv (large: a row per failing expression per host).",
)
@verbosity_options
def report(db: str, run_id: int | None, out_dir: Path, long_csv: bool) -> None:
    """Write the HTML report and CSV files of a stored evaluation run.

    The HTML file is self-contained (no network): a summary with changes since
    the previous run, a filterable matrix of images x host groups, a page per
    image and per host with the failing rules and the hosts' actual values, and
    plots. Reports never re-evaluate: any past run can be rendered again.

    \b
    Examples:
      fleetcompat report --out report/
      fleetcompat report --run 12 --out report-12/

    \b
    Exit codes:
      0  written
      2  no such run, or the database is not ours
    """
    from fleetcompat.report import write_report
    from fleetcompat.store import Store

    with Store(db, create=False) as store:
        written = write_report(store, run_id, out_dir, long_csv=long_csv)
    click.echo(str(written.html))


@click.command()
@collection_options
@vault_options
@layouts_option
@db_option
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the report.",
)
@click.option(
    "--fail-on",
    type=click.Choice(["none", "regression", "incompatible", "any-failure"]),
    default="none",
    show_default=True,
    help="What makes the exit status 4 (see above).",
)
@click.option(
    "--long-csv/--no-long-csv",
    default=True,
    show_default=True,
    help="Write results_long.csv (large: a row per failing expression per host).",
)
@output_option("table", "json")
@verbosity_options
def audit(
    inventory: Path,
    layouts: tuple[Path, ...],
    db: str,
    out_dir: Path,
    fail_on: str,
    limit: str | None,
    concurrency: int,
    timeout: float,
    known_hosts: str,
    known_hosts_file: Path,
    long_csv: bool,
    output: str,
    vault_password_files: tuple[str, ...],
    vault_ids: tuple[str, ...],
) -> None:
    """Collect, evaluate and report in one go: the nightly job.

    Prints where the report is. --fail-on chooses what counts as failure:

    \b
      none          never exit 4 (default)
      regression    a host x image compatible in the previous run is not now
      incompatible  any host x image is incompatible
      any-failure   any cell not compatible, any host not collected, or any
                    image without a usable spec, or any layout problem

    \b
    Examples:
      fleetcompat audit -i inventory.yaml --oci-layout mirror/ --out report/
      fleetcompat audit -i fleet.json --oci-layout mirror/ --out /srv/report \\
          --fail-on regression

    \b
    Exit codes:
      0  done, nothing failed
      2  bad inventory, layout path or --out directory (nothing written)
      3  partial: some layouts, hosts or images failed, some cells are errors
         or of a host of unknown architecture; the report covers the rest
      4  the --fail-on policy tripped (takes precedence over 3)
      130  interrupted
    """
    from fleetcompat.audit import run_audit
    from fleetcompat.vault import Keyring

    options = collect_options(concurrency, timeout, known_hosts, known_hosts_file)
    result = run_audit(
        inventory,
        list(layouts),
        db,
        out_dir,
        fail_on=fail_on,
        limit=limit,
        collect_options=options,
        progress=_progress,
        long_csv=long_csv,
        keyring=Keyring.from_options(vault_ids, vault_password_files),
    )

    if output == "json":
        print_json(result.to_json())
    else:
        _print_audit(result)
    if result.tripped:
        raise SystemExit(int(ExitCode.INCOMPATIBLE))
    if result.partial:
        for problem in result.evaluation.problems():
            click.echo(f"fleetcompat: partial: {problem}", err=True)
        raise SystemExit(int(ExitCode.PARTIAL))


def _print_audit(result: Any) -> None:
    """Counts of each stage, why the policy tripped, and where the report is."""
    collected = result.collect
    counts = ", ".join(f"{n} {o}" for o, n in sorted(collected.counts.items()))
    click.echo(f"collect run {collected.run_id}: {collected.status}, {counts}")
    _print_evaluation_line(result.evaluation)
    for reason in result.tripped:
        click.echo(f"fail-on: {reason}", err=True)
    click.echo(f"report: {result.report.html}")


def _print_evaluation_line(evaluation: Any) -> None:
    """One line: the evaluation run's cells by verdict."""
    from fleetcompat.evaluate import plural

    cells = ", ".join(f"{n} {v}" for v, n in evaluation.cells.items())
    click.echo(
        f"evaluate run {evaluation.run_id}: {plural(evaluation.hosts, 'host')} x "
        f"{plural(evaluation.images, 'image')}: {cells} ({evaluation.seconds:.2f}s)"
    )


COMMANDS = [evaluate, report, audit]
