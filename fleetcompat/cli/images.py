"""`fleetcompat images`, `attach` and `mirror`: images and their specs in layouts."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from fleetcompat.cli.main import (
    ExitCode,
    layouts_option,
    output_option,
    print_json,
    verbosity_options,
)


@click.command()
@layouts_option
@output_option("table", "json")
@verbosity_options
def images(layouts: tuple[Path, ...], output: str) -> None:
    """List the images in OCI layouts and the compatibility spec of each.

    For every image: its references, digest and platforms, and per platform the
    NFD compatibility artifact NFD would pick (the newest by its created
    annotation; the platform's own, else the index's), how many there were to
    pick from (CANDIDATES), its number of compatibility sets and tags. With
    several layouts, a LAYOUT column says which each row comes from. Broken or
    hostile content, and specs NFD would fail evaluating, are reported per image;
    the other images are still listed.

    \b
    Examples:
      fleetcompat images --oci-layout examples/oci-layout
      fleetcompat images --oci-layout mirror/ --output json

    Exits 3 when some image or layout had problems, 2 when a path is not a layout.
    """
    from fleetcompat.oci import catalog_to_json, scan_layouts

    catalog = scan_layouts(list(layouts))
    if output == "json":
        print_json(catalog_to_json(catalog))
    else:
        _print_catalog(catalog_to_json(catalog))
    for hint in catalog.hints:
        click.echo(f"fleetcompat: hint: {hint}", err=True)
    if not catalog.complete:
        raise SystemExit(int(ExitCode.PARTIAL))


def _print_catalog(catalog: dict[str, Any]) -> None:
    """Print the catalog as aligned columns, problems below it.

    A LAYOUT column is added when more than one layout was read, so the same
    reference in two layouts can be told apart.
    """
    several = len(catalog["layouts"]) > 1
    header = ["IMAGE", "DIGEST", "PLATFORM", "ARTIFACT", "CANDIDATES", "CREATED"]
    rows = [(["LAYOUT"] if several else []) + header + ["SETS", "TAGS", "FROM"]]
    for image in catalog["images"]:
        name = ", ".join(image["references"]) or "(untagged)"
        layout = image["layout"]
        for choice in image["artifacts"] or [{}]:
            rows.append(
                ([layout] if several else [])
                + [
                    name,
                    image["digest"][7:19],
                    choice.get("platform") or "-",
                    (choice.get("digest") or "")[7:19] or "-",
                    _candidates(choice),
                    choice.get("created") or "-",
                    str(choice.get("compatibilitySets") or "-"),
                    ",".join(choice.get("tags") or []) or "-",
                    choice.get("source") or "-",
                ]
            )
            name = layout = ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )

    for image in catalog["images"]:
        label = ", ".join(image["references"]) or image["digest"]
        if several:
            label = f"{image['layout']}: {label}"
        for problem in image["problems"]:
            click.echo(f"problem: {label}: {problem}")
    for problem in catalog["problems"]:
        click.echo(f"problem: {problem}")


def _candidates(choice: dict[str, Any]) -> str:
    """How many artifacts competed for a choice: `1`, `3 (newest used)`, or `-`."""
    count = int(choice.get("candidates") or 0)
    if count == 0:
        return "-"
    if not choice.get("digest"):
        return f"{count} (newest unreadable)"
    return f"{count} (newest used)" if count > 1 else "1"


@click.command()
@click.argument("image")
@click.argument("spec", type=click.Path(path_type=Path))
@click.option(
    "--oci-layout",
    "layout",
    required=True,
    type=click.Path(path_type=Path),
    help="The OCI image layout holding the image.",
)
@click.option("--platform", help="Attach to this platform's manifest (os/arch).")
@click.option(
    "--created",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%z"]),
    metavar="TIMESTAMP",
    help="The created annotation, RFC 3339 to the second: 2026-02-03T04:05:06Z or "
    "2026-02-03T04:05:06+02:00 (written in UTC). Default: now.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Attach a spec even though NFD would fail evaluating it.",
)
@verbosity_options
def attach(
    image: str,
    spec: Path,
    layout: Path,
    platform: str | None,
    created: datetime | None,
    force: bool,
) -> None:
    """Attach a compatibility spec to an image in a layout, as oras attach does.

    The spec is validated first, and checked for what NFD would fail on when
    evaluating it (an unknown op, a wrong number of values, a regexp or bound
    that does not parse, a template that does not parse): such a spec is refused
    with the problems listed, unless --force. The artifact gets NFD's artifact type, the
    empty config, the spec as its layer, a created annotation and the image as
    subject, and an untagged entry in index.json. Prints the artifact digest.

    An artifact that will not be chosen is attached all the same, with a warning
    on stderr for each platform that will still use another artifact, and why:
    one created later (compare --created), or, when attaching to a multi-platform
    image, the platform manifest's own artifact, which wins over the image's for
    that platform (attach with --platform to replace it).

    \b
    Examples:
      fleetcompat attach cuda-inference:12.4 gpu.yaml --oci-layout mirror/
      fleetcompat attach app:1.0 spec.yaml --oci-layout mirror/ --platform linux/amd64
    """
    from fleetcompat.attach import attach as attach_spec

    descriptor = attach_spec(
        layout, image, spec, created=created, platform=platform, force=force
    )
    click.echo(descriptor.digest)


@click.command()
@click.argument("references", nargs=-1, required=True)
@click.option(
    "--oci-layout",
    "layout",
    required=True,
    type=click.Path(path_type=Path),
    help="The OCI image layout to write (created when absent).",
)
@click.option("--plain-http", is_flag=True, help="Talk HTTP, not HTTPS, to registries.")
@click.option(
    "--with-images",
    is_flag=True,
    help="Also copy image configs and layers (a complete image copy).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Wait at most this long for a connection, and then for each answer to "
    "arrive whole (image layers get a second more per 64 KiB).",
)
@output_option("table", "json")
@verbosity_options
def mirror(
    references: tuple[str, ...],
    layout: Path,
    plain_http: bool,
    with_images: bool,
    timeout: float,
    output: str,
) -> None:
    """Copy images' compatibility artifacts from a registry into an OCI layout.

    For each reference, the image index and platform manifests are copied with
    every NFD compatibility artifact that refers to them (found through the
    registry's referrers API, or the sha256-<hex> tag schema when it has none).
    Everything fetched is checked against its digest. Run it on the connected
    side, carry the layout across, and audit it there.

    A reference names its registry: registry/repository[:tag][@sha256:<hex>];
    no tag means latest. A name without a registry host (alpine:3) is refused,
    as oras does, rather than taken as Docker Hub's: write
    docker.io/library/alpine:3. With -v, each reference's progress (resolved,
    referrers found, copied) is shown on stderr.

    \b
    Examples:
      fleetcompat mirror registry.example.com/ml/cuda:12.4 --oci-layout mirror/
      fleetcompat mirror localhost:5000/app:1.0 --oci-layout mirror/ --plain-http

    Exits 3 when some references could not be copied (the others were), 2 when
    a reference is not one (nothing is fetched then).
    """
    from fleetcompat.mirror import mirror as mirror_images

    result = mirror_images(
        list(references),
        layout,
        plain_http=plain_http,
        with_images=with_images,
        timeout=timeout,
    )
    if output == "json":
        print_json(result.to_json())
    else:
        for item in result.images:
            status = "ok" if not item.problem else f"failed: {item.problem}"
            count = len(item.artifacts)
            click.echo(
                f"{item.reference}\t{item.digest or '-'}\t{count} artifacts\t{status}"
            )
    if any(item.problem for item in result.images):
        raise SystemExit(int(ExitCode.PARTIAL))


COMMANDS = [images, attach, mirror]
