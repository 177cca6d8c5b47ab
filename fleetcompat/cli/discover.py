"""`fleetcompat discover`: the features NFD's worker would report for one host."""

from __future__ import annotations

import socket

import click

from fleetcompat.cli.main import verbosity_options
from fleetcompat.discovery.output import (
    discover_source,
    render_features,
)


@click.command()
@click.option(
    "--root",
    "root",
    type=click.Path(exists=True),
    default=None,
    help="A captured host tree (a directory read as /), or a probe output file. "
    "Default: run the probe on this machine.",
)
@click.option(
    "--node-name",
    envvar="NODE_NAME",
    default="",
    show_default=False,
    help="The node name (system.name nodename; the NodeFeature's name). As NFD, "
    "taken from $NODE_NAME; else this machine's host name when probing it.",
)
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Choice(["json", "yaml", "nodefeature"]),
    default="json",
    show_default=True,
    help="json: as `nfd export features` prints; yaml: the same as YAML; "
    "nodefeature: a NodeFeature object.",
)
@verbosity_options
def discover(root: str | None, node_name: str, output: str) -> None:
    """Print the features NFD's worker would report for a host.

    Reads this machine through the same probe that runs over SSH, a host tree
    captured on disk (--root DIR, as NFD's /host-* mounts), or the output of the
    probe run by hand on a host that cannot be reached (--root FILE).

    \b
    Examples:
      fleetcompat discover                        # this machine, nfd export shape
      fleetcompat discover --root /mnt/capture -o nodefeature --node-name n1
      sh probe.sh > host.probe; fleetcompat discover --root host.probe
    """
    if not node_name and root is None:
        node_name = socket.gethostname()
    result = discover_source(root, node_name)
    for note in result.notes:
        click.echo(f"fleetcompat: note: {note}", err=True)
    click.echo(render_features(result.features, output, node_name), nl=False)


COMMANDS = [discover]
