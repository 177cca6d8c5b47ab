"""Images and their NFD compatibility artifacts, found in OCI image layouts.

`scan_layouts(paths)` reads layout directories (or directories of layouts: every
subdirectory holding an `oci-layout` file) and returns a `Catalog` of every image
with the compatibility artifact NFD's client would pick for it. The reading itself
lives in `fleetcompat.oci_layout`; blob access and its checks in
`fleetcompat.oci_blobs`.

For the evaluator, `chosen_specs(catalog)` gives, for each image, the list of
`(platform or None, Artifact)` pairs whose `Artifact.spec_bytes` are to be parsed
with `fleetcompat.spec.load_spec`: one pair per platform of a multi-platform image
that has an artifact (the platform's own, else the index's), or a single
`(None, artifact)` for a single-manifest image. Images without an artifact are left
out; `Image.problems` says why when something was broken.

How the artifact is chosen, as NFD's `nfd compat validate-node` does it:

- Referrers are manifests whose `subject` names the image index, a platform
  manifest, or a single manifest, found in every form tools write (untagged
  `index.json` entries, `sha256-<hex>` tag-schema indexes, nested indexes); only
  those whose `artifactType` (or, lacking it, `config.mediaType`) is
  `application/vnd.nfd.image-compatibility.v1alpha1` count.
- The newest by the `org.opencontainers.image.created` annotation wins (RFC 3339;
  missing or unparsable counts as the zero time, i.e. oldest). NFD sorts with an
  unstable sort, so its pick among equal times is arbitrary; ours is the artifact
  with the greatest digest string, so the same layout always gives the same pick.
- Per platform, the platform manifest's newest artifact is used when it has one,
  otherwise the index's (`Choice.source` says "platform" or "index"); a
  single-manifest image's choice has source "manifest". NFD looks at only one of
  the two, depending on `--platform`; taking the more specific one is what a user
  running it with `--platform` for that host would get.
- The spec is the artifact's first layer, as in NFD. For the withdrawn
  `application/vnd.oci.artifact.manifest.v1+json` it is the first entry of
  `blobs`; NFD itself would fail on such an artifact with "compatibility layer not
  found", since it reads only `layers`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from fleetcompat.errors import LayoutError

ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
"""Go's zero time: what a missing or unparsable created annotation counts as."""

Source = Literal["platform", "index", "manifest"]

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})([.,]\d+)?(Z|[+-]\d{2}:\d{2})"
)


@dataclass(frozen=True)
class PlatformManifest:
    """One platform's manifest inside a multi-platform image index."""

    os: str
    architecture: str
    variant: str | None
    digest: str
    media_type: str
    size: int

    @property
    def name(self) -> str:
        """The platform as `os/arch[/variant]`, the form `--platform` takes."""
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)


@dataclass(frozen=True)
class Artifact:
    """A compatibility artifact with the spec it carries, verified."""

    digest: str
    subject: str
    created: str | None
    created_at: datetime
    spec_bytes: bytes
    spec_digest: str
    layout: Path
    media_type: str
    compatibility_count: int | None
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Choice:
    """The artifact chosen for one platform (or for the whole image)."""

    platform: PlatformManifest | None
    artifact: Artifact | None
    source: Source | None
    candidates: int


@dataclass(frozen=True)
class Image:
    """An image found in a layout, with its platforms, choices and problems."""

    layout: Path
    references: tuple[str, ...]
    digest: str
    media_type: str
    size: int
    platforms: tuple[PlatformManifest, ...]
    choices: tuple[Choice, ...]
    problems: tuple[str, ...]

    @property
    def name(self) -> str:
        """The first reference as written in the layout, else the digest."""
        return self.references[0] if self.references else self.digest


@dataclass(frozen=True)
class Catalog:
    """Every image found in the layouts scanned, and what was wrong."""

    layouts: tuple[Path, ...]
    images: tuple[Image, ...]
    problems: tuple[str, ...]
    hints: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """Whether nothing at all was broken (no layout or image problems)."""
        return not self.problems and not any(i.problems for i in self.images)


def scan_layouts(paths: list[Path]) -> Catalog:
    """Read layouts and directories of layouts into a Catalog.

    A layout named twice (`lay` and `./lay/`, or through a directory of layouts)
    is read once, where it first appears. Raises LayoutError for a path that is
    neither a layout nor a directory of layouts. Anything wrong inside a layout is
    reported in the catalog instead.
    """
    from fleetcompat.oci_layout import read_layout

    named = [layout for path in paths for layout in find_layouts(Path(path))]
    first: dict[Path, Path] = {}
    for layout in named:
        first.setdefault(layout.resolve(), layout)
    layouts = list(first.values())
    images: list[Image] = []
    problems: list[str] = []
    hints: list[str] = []

    for layout in layouts:
        found = read_layout(layout)
        images.extend(found.images)
        problems.extend(found.problems)
        hints.extend(found.hints)

    return Catalog(tuple(layouts), tuple(images), tuple(problems), tuple(hints))


def find_layouts(path: Path) -> list[Path]:
    """The layout at `path`, or the layouts one level below it.

    Raises LayoutError naming what is missing when there is none.
    """
    if not path.exists():
        raise LayoutError(f"{path}: no such directory")
    if not path.is_dir():
        raise LayoutError(f"{path}: not a directory; an OCI image layout is one")
    if (path / "oci-layout").exists():
        return [path]

    children = sorted(
        child for child in path.iterdir() if (child / "oci-layout").is_file()
    )
    if not children:
        raise LayoutError(
            f"{path}/: no oci-layout file; not an OCI image layout "
            "(nor a directory of layouts)"
        )
    return children


def chosen_specs(
    catalog: Catalog,
) -> list[tuple[Image, list[tuple[PlatformManifest | None, Artifact]]]]:
    """For each image, the (platform or None, chosen artifact) pairs to evaluate."""
    result = []
    for image in catalog.images:
        pairs = [
            (choice.platform, choice.artifact)
            for choice in image.choices
            if choice.artifact is not None
        ]
        result.append((image, pairs))
    return result


def find_image(catalog: Catalog, reference: str) -> Image:
    """The one image a reference names: a tag, a full reference or a digest.

    `name:tag` matches a ref.name written as `name:tag`, as just `tag`, or as a
    longer reference ending in `/name:tag`; `name@sha256:…` and `sha256:…` match
    by digest. Raises LayoutError when none or several images match.
    """
    exact = [i for i in catalog.images if reference in i.references]
    if len(exact) == 1:
        return exact[0]
    matches = exact or [i for i in catalog.images if _matches(i, reference)]
    if not matches:
        where = ", ".join(str(p) for p in catalog.layouts)
        raise LayoutError(f"{reference}: no such image in {where}")
    if len({(i.layout, i.digest) for i in matches}) > 1:
        names = ", ".join(sorted({i.name for i in matches}))
        raise LayoutError(f"{reference}: ambiguous, it matches {names}")
    return matches[0]


def _matches(image: Image, reference: str) -> bool:
    """Whether a reference names an image loosely (by tag, suffix or digest)."""
    name, at, digest = reference.partition("@")
    if at:
        return image.digest == digest
    if re.fullmatch(r"sha(256|512):[0-9a-f]+", reference):
        return image.digest == reference

    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    for written in image.references:
        if written == tag or written.endswith("/" + name):
            return True
    return False


def parse_created(value: str | None) -> datetime:
    """Parse an RFC 3339 timestamp as Go's time.Parse does; zero time if bad."""
    if value is None:
        return ZERO_TIME
    match = _RFC3339.fullmatch(value)
    if match is None:
        return ZERO_TIME

    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction[1:] + "000000")[:6]) if fraction else 0
    if zone == "Z":
        tz = UTC
    else:
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            return ZERO_TIME
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        parsed = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            micros,
            tzinfo=tz,
        )
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return ZERO_TIME


def catalog_to_json(catalog: Catalog) -> dict[str, Any]:
    """The catalog as one JSON-ready document (what `images --output json` prints)."""
    return {
        "layouts": [str(p) for p in catalog.layouts],
        "images": [_image_to_json(image) for image in catalog.images],
        "problems": list(catalog.problems),
        "hints": list(catalog.hints),
    }


def _image_to_json(image: Image) -> dict[str, Any]:
    """One image as JSON-ready data."""
    return {
        "layout": str(image.layout),
        "references": list(image.references),
        "digest": image.digest,
        "mediaType": image.media_type,
        "platforms": [
            {"platform": p.name, "digest": p.digest} for p in image.platforms
        ],
        "artifacts": [_choice_to_json(choice) for choice in image.choices],
        "problems": list(image.problems),
    }


def _choice_to_json(choice: Choice) -> dict[str, Any]:
    """One platform's choice as JSON-ready data."""
    artifact = choice.artifact
    return {
        "platform": choice.platform.name if choice.platform else None,
        "source": choice.source,
        "candidates": choice.candidates,
        "digest": artifact.digest if artifact else None,
        "subject": artifact.subject if artifact else None,
        "created": artifact.created if artifact else None,
        "specDigest": artifact.spec_digest if artifact else None,
        "compatibilitySets": artifact.compatibility_count if artifact else None,
        "tags": list(artifact.tags) if artifact else [],
    }
