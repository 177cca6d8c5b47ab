"""`fleetcompat collect`, `import` and `hosts`: hosts' features into the database."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fleetcompat.cli.main import (
    ExitCode,
    F,
    console,
    db_option,
    output_option,
    print_json,
    verbosity_options,
)

if TYPE_CHECKING:
    from fleetcompat.collect import CollectOptions

KNOWN_HOSTS_HELP = (
    "strict: only keys already in known_hosts; accept-new: also record new hosts' "
    "keys in fleetcompat's own known_hosts file (a changed key always fails)."
)


def default_known_hosts_file() -> str:
    """fleetcompat's own known_hosts file (FLEETCOMPAT_KNOWN_HOSTS overrides)."""
    configured = os.environ.get("FLEETCOMPAT_KNOWN_HOSTS")
    if configured:
        return configured
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return str(Path(base) / "fleetcompat" / "known_hosts")


def collection_options(func: F) -> F:
    """The options of a collection run, shared by `collect` and `audit`."""
    options = [
        click.option(
            "-i",
            "--inventory",
            required=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help="Ansible inventory: YAML, INI, or the JSON of "
            "`ansible-inventory --list`; its group_vars/ and host_vars/ are read.",
        ),
        click.option(
            "--limit", metavar="PATTERN", help="Hosts or groups, Ansible style."
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 10_000),
            default=50,
            show_default=True,
            help="Most hosts connecting at once (hosts running a probe wait apart).",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0.1),
            metavar="SECONDS",
            default=90.0,
            show_default=True,
            help="Deadline per host, in seconds, over connect, auth and probe.",
        ),
        _phase_option("connect", "TCP connect and SSH handshake", "at most 10"),
        _phase_option("auth", "user authentication", "at most 15"),
        _phase_option(
            "start", "from running the probe to its first output", "at most 15"
        ),
        _phase_option("probe", "running the probe, reading its output", ""),
        click.option(
            "--known-hosts",
            "known_hosts",
            type=click.Choice(["strict", "accept-new"]),
            default="strict",
            show_default=True,
            help=KNOWN_HOSTS_HELP,
        ),
        click.option(
            "--known-hosts-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=default_known_hosts_file,
            show_default="~/.config/fleetcompat/known_hosts",
            help="fleetcompat's own known_hosts (read, and written by accept-new).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


PHASE_TIMEOUTS = "fleetcompat.phase_timeouts"
"""Where the phase deadline options are kept in the click context's meta.

They are not passed to the commands as parameters (collect and audit share
these options, and their signatures stay as they are); `collect_options` reads
them from there.
"""


def _phase_option(phase: str, what: str, cap: str) -> Callable[[F], F]:
    """A --PHASE-timeout option: one phase's deadline, kept for collect_options."""

    def remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None:
            ctx.meta.setdefault(PHASE_TIMEOUTS, {})[phase] = value

    return click.option(
        f"--{phase}-timeout",
        type=click.FloatRange(min=0.1),
        metavar="SECONDS",
        expose_value=False,
        callback=remember,
        show_default=f"30% of --timeout, {cap}" if cap else "--timeout",
        help=f"Deadline of the {phase} phase ({what}), in seconds; "
        "not above --timeout.",
    )


def vault_options(func: F) -> F:
    """Where vault passwords come from, for `!vault` values in the inventory."""
    options = [
        click.option(
            "--vault-password-file",
            "vault_password_files",
            multiple=True,
            metavar="FILE",
            help="Vault password file (executable: run, stdout is the password). "
            "Repeatable; ANSIBLE_VAULT_PASSWORD_FILE is read too.",
        ),
        click.option(
            "--vault-id",
            "vault_ids",
            multiple=True,
            metavar="[LABEL@]FILE",
            help="Vault password file for a vault id, as Ansible's --vault-id "
            "(never prompt). Repeatable.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def collect_options(
    concurrency: int, timeout: float, known_hosts: str, known_hosts_file: Path
) -> CollectOptions:
    """The collector's settings from the shared command-line options.

    The phase deadlines come from the click context (see PHASE_TIMEOUTS); one
    longer than --timeout is a usage error naming both.
    """
    from fleetcompat.collect import CollectOptions, Timeouts

    context = click.get_current_context(silent=True)
    phases = context.meta.get(PHASE_TIMEOUTS, {}) if context else {}
    for phase, seconds in phases.items():
        if seconds > timeout:
            raise click.UsageError(
                f"--{phase}-timeout {seconds:g} is longer than the host deadline, "
                f"--timeout {timeout:g}"
            )
    return CollectOptions(
        concurrency=concurrency,
        timeouts=Timeouts.for_host(timeout, **phases),
        known_hosts=known_hosts,
        known_hosts_file=known_hosts_file,
    )


@click.command()
@collection_options
@vault_options
@db_option
@output_option("table", "json")
@click.option(
    "--retain",
    type=click.IntRange(min=1),
    help="Keep only this many snapshots per host (and its newest good one).",
)
@click.option(
    "--list-hosts",
    is_flag=True,
    help="Only say how each selected host would be contacted (address, port, "
    "user, key files, jump hosts); contact none, write nothing.",
)
@verbosity_options
def collect(
    inventory: Path,
    db: str,
    limit: str | None,
    concurrency: int,
    timeout: float,
    output: str,
    known_hosts: str,
    known_hosts_file: Path,
    retain: int | None,
    vault_password_files: tuple[str, ...],
    vault_ids: tuple[str, ...],
    list_hosts: bool,
) -> None:
    """Collect the features of every host of an inventory into the database.

    One probe (a read-only POSIX sh script) runs on each host over SSH, or
    locally for `ansible_connection: local`; its output becomes NFD features.
    Each host ends with one outcome (ok, unreachable, refused, timeout,
    auth-failed, hostkey-mismatch, hostkey-unknown, probe-failed,
    output-invalid, output-oversized) and is saved as soon as it finishes.

    Connection defaults (remote_user, remote_port, private_key_file, ssh_args)
    come from the ansible.cfg Ansible would use: $ANSIBLE_CONFIG,
    ./ansible.cfg, ~/.ansible.cfg, /etc/ansible/ansible.cfg, the first found;
    -v names it. Inventory variables win over them.

    \b
    Examples:
      fleetcompat collect -i inventory.yaml
      fleetcompat collect -i /etc/ansible/hosts
      fleetcompat collect -i inventory.yaml --limit 'web*,!web-canary' -o json
      ansible-inventory -i aws_ec2.yml --list > fleet.json
      fleetcompat collect -i fleet.json --known-hosts accept-new
      fleetcompat collect -i inventory.yaml --vault-password-file ~/.vault_pass
      fleetcompat collect -i hosts.ini --limit web --list-hosts

    Exits 0 when every selected host was collected, 3 when some failed or were
    skipped (or none was left to collect), 2 for a bad inventory or a --limit
    that selects no host (nothing is written), 130 when interrupted (finished
    hosts kept).
    """
    from fleetcompat.collect import check_known_hosts_file, collect_fleet, plan_fleet
    from fleetcompat.inventory import load_inventory
    from fleetcompat.store import Store
    from fleetcompat.vault import Keyring

    options = collect_options(concurrency, timeout, known_hosts, known_hosts_file)
    keyring = Keyring.from_options(vault_ids, vault_password_files)
    fleet = load_inventory(inventory, keyring)
    fleet.select(limit)
    if list_hosts:
        _print_plans(plan_fleet(fleet, limit, options), output)
        return
    check_known_hosts_file(options)
    with Store(db) as store, _ProgressView(output) as view:
        summary = collect_fleet(
            fleet, store, limit=limit, options=options, retain=retain, progress=view
        )

    if output == "json":
        print_json(summary.to_json())
    else:
        _print_summary(summary)
    if summary.status == "interrupted":
        raise SystemExit(int(ExitCode.INTERRUPTED))
    if summary.status != "ok":
        raise SystemExit(int(ExitCode.PARTIAL))


class _ProgressView:
    """Live progress on a terminal, plain lines on stderr otherwise."""

    def __init__(self, output: str) -> None:
        import logging

        self.quiet = logging.getLogger("fleetcompat").level >= logging.ERROR
        self.live = sys.stderr.isatty() and not self.quiet
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> _ProgressView:
        if self.live:
            from rich.progress import BarColumn, Progress, TextColumn

            self.progress = Progress(
                TextColumn("collect"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} done"),
                TextColumn("{task.fields[failed]} failed"),
                TextColumn("{task.fields[flight]} in flight"),
                TextColumn("{task.fields[rate]:.1f} hosts/s"),
                console=Console(stderr=True),
                transient=True,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, state: Any) -> None:
        if self.progress is not None:
            if self.task is None:
                self.task = self.progress.add_task(
                    "collect", total=state.total, failed=0, flight=0, rate=0.0
                )
            self.progress.update(
                self.task,
                completed=state.done,
                failed=state.failed,
                flight=state.in_flight,
                rate=state.rate,
            )
            if state.last is not None and state.last.outcome != "ok":
                self.progress.console.print(
                    _line(state.last), markup=False, highlight=False
                )
            return
        if state.last is not None and not self.quiet:
            click.echo(
                f"fleetcompat: [{state.done}/{state.total}] {_line(state.last)}",
                err=True,
            )


def _line(host: Any) -> str:
    """One finished host as a log line, control characters made printable."""
    from fleetcompat.probing import printable

    text = f"{host.name}: {host.outcome} ({host.duration_ms / 1000:.1f}s)"
    return printable(f"{text}: {host.reason}" if host.reason else text)


def _print_plans(plans: list[dict[str, Any]], output: str) -> None:
    """What --list-hosts prints: one row (or JSON object) per selected host."""
    if output == "json":
        print_json({"hosts": plans})
        return
    rows = []
    for plan in plans:
        if "skip" in plan:
            rows.append((plan["host"], "skipped: " + plan["skip"], "", ""))
        elif plan["connection"] == "local":
            rows.append((plan["host"], "local", "", ""))
        else:
            login = f"{plan['user']}@{plan['address']}:{plan['port']}"
            keys = ", ".join(plan["key_files"]) or "(agent, default keys)"
            if plan["password"]:
                keys += ", password"
            rows.append((plan["host"], login, keys, ",".join(plan["jump"])))
    _print_table(("HOST", "LOGIN", "KEYS", "JUMP"), rows)


def _print_summary(summary: Any) -> None:
    """The run's counts, and the failed and skipped hosts with their reasons."""
    counts = ", ".join(f"{n} {o}" for o, n in sorted(summary.counts.items()))
    counts = counts or "no host collected"
    if summary.skipped:
        counts += f", {len(summary.skipped)} skipped"
    click.echo(
        f"run {summary.run_id}: {summary.status}, {counts} in {summary.duration_s:.1f}s"
    )
    rows = [(h.name, h.outcome, h.reason) for h in summary.failed]
    rows += [(name, "skipped", reason) for name, reason in summary.skipped]
    if rows:
        _print_table(("HOST", "OUTCOME", "REASON"), rows)


def _print_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain table on stdout; every cell printable (no terminal control codes)."""
    from fleetcompat.probing import printable

    table = Table(box=None, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(printable(cell)) for cell in row))
    console().print(table)


@click.command("import")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@db_option
@click.option(
    "--host",
    "host",
    help="Host name for a bare features file or probe output (default: file stem).",
)
@output_option("table", "json")
@verbosity_options
def import_cmd(files: tuple[Path, ...], db: str, host: str | None, output: str) -> None:
    """Import features carried in by hand: NodeFeature, nfd export, probe output.

    Reads NodeFeature objects (one, or a `kind: List` from `kubectl get
    nodefeatures -A -o yaml`: one snapshot per node), bare features as `nfd
    export features` prints them (named by --host or the file's stem), and probe
    output files from `sh probe.sh > host.probe` (discovery runs on them). A bad
    file is reported on one line; the other files are still imported.

    \b
    Examples:
      kubectl get nodefeatures -A -o yaml > nodes.yaml
      fleetcompat import nodes.yaml
      fleetcompat import --host gpu-07 gpu-07.probe

    Exits 0 when every file was imported, 3 when some were not, 2 when none was.
    """
    from fleetcompat.importer import import_files
    from fleetcompat.store import Store

    with Store(db) as store:
        summary = import_files(list(files), store, host=host)

    from fleetcompat.probing import printable

    for problem in summary.errors:
        click.echo(f"fleetcompat: error: {printable(problem)}", err=True)
    if output == "json":
        print_json(summary.to_json())
    else:
        for item in summary.imported:
            click.echo(printable(f"{item.host}: {item.source} from {item.path}"))
    if summary.errors:
        code = ExitCode.PARTIAL if summary.imported else ExitCode.USAGE
        raise SystemExit(int(code))


@click.command()
@db_option
@output_option("table", "json")
@verbosity_options
def hosts(db: str, output: str) -> None:
    """List the fleet: each host with the age and outcome of its latest snapshot.

    \b
    Examples:
      fleetcompat hosts
      fleetcompat hosts --db nightly.db --output json
    """
    from fleetcompat.collect import fleet_status
    from fleetcompat.store import Store

    if not Path(db).exists():
        raise click.UsageError(f"{db}: no such database (run fleetcompat collect)")
    with Store(db) as store:
        fleet = fleet_status(store)

    now = datetime.now(UTC)
    rows = [_host_row(status, now) for status in fleet]
    if output == "json":
        print_json(rows)
        return
    columns = ("HOST", "ADDRESS", "OUTCOME", "AGE", "LAST OK", "SOURCE", "REASON")
    cells = [
        (
            row["name"],
            row["address"],
            row["outcome"] or "-",
            row["age"] or "-",
            row["last_ok_age"] or "never",
            row["source"] or "-",
            row["reason"],
        )
        for row in rows
    ]
    _print_table(columns, cells)


def _host_row(status: Any, now: datetime) -> dict[str, Any]:
    """One host as a row: its latest snapshot and the age of its latest good one."""
    latest, good = status.latest, status.latest_good
    return {
        "name": status.host.name,
        "address": status.host.address,
        "groups": list(status.host.groups),
        "outcome": latest.status if latest else None,
        "reason": latest.error if latest else "",
        "taken_at": latest.taken_at if latest else None,
        "age": _age(latest.taken_at, now) if latest else None,
        "source": latest.source if latest else None,
        "last_ok_at": good.taken_at if good else None,
        "last_ok_age": _age(good.taken_at, now) if good else None,
        "feature_set": good.feature_set if good else None,
    }


def _age(taken_at: str, now: datetime) -> str:
    """How long ago an ISO time was, as 42s / 5m / 3h / 2d."""
    try:
        then = datetime.fromisoformat(taken_at.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


COMMANDS = [collect, import_cmd, hosts]
