"""Attach a compatibility spec to an image in a layout, as `oras attach` does.

`attach(layout, image, spec)` writes exactly what `oras attach --oci-layout
--artifact-type <NFD type> <layout>:<image> <spec>:<NFD spec media type>` writes:
the empty config (with its data inlined), the spec as the only layer titled with
its file name, a `created` annotation, the image (or, with `platform`, that
platform's manifest) as subject, and an untagged `index.json` entry carrying the
artifact type and annotations. `index.json` is replaced atomically. Two attaches
running at once on one layout can still lose one of the two entries: there is no
lock, as oras-go has none either.

An artifact that will not be chosen is still attached (it is what was asked), but
a warning is logged for each platform that will still use another artifact: one
created later (or at the same time with a greater digest), or, when attaching to
a multi-platform image, the platform manifest's own artifact, which wins over the
image's. The layout is read again after attaching and the reader's own choice
compared, so the warning cannot disagree with what `images` and `evaluate` use.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetcompat.documents import parse_text
from fleetcompat.errors import InputError, LayoutError, SpecError
from fleetcompat.oci import Image, find_image, scan_layouts
from fleetcompat.oci_blobs import (
    CREATED,
    EMPTY,
    EMPTY_DIGEST,
    MANIFEST,
    MAX_INDEX_JSON_BYTES,
    MAX_SPEC_BYTES,
    NFD_ARTIFACT_TYPE,
    NFD_SPEC_MEDIA_TYPE,
    TITLE,
    BlobError,
    Descriptor,
    canonical_json,
    parse_json,
    read_bounded,
    write_atomically,
    write_blob,
)

log = logging.getLogger(__name__)


def attach(
    layout: Path,
    image_ref: str,
    spec_path: Path,
    *,
    created: datetime | None = None,
    platform: str | None = None,
    force: bool = False,
) -> Descriptor:
    """Add a spec as a compatibility artifact of an image; return its descriptor.

    `created` defaults to now; `platform` (`os/arch[/variant]`) makes that
    platform's manifest the subject. Raises SpecError for a spec that does not
    validate, or (unless `force`) that `check_spec` finds problems in: errors
    NFD would raise evaluating it. Raises LayoutError when the layout or image
    cannot be used. Logs a warning for each platform that will still use another
    artifact, and why.
    """
    layout = Path(layout)
    spec = _read_spec(Path(spec_path), force)
    image, subject = _subject(layout, image_ref, platform)
    stamp = format_created(created or datetime.now(UTC))

    spec_digest = write_blob(layout, spec)
    write_blob(layout, b"{}")
    manifest = _manifest(subject, spec_digest, len(spec), spec_path.name, stamp)
    data = canonical_json(manifest)
    digest = write_blob(layout, data)

    descriptor = Descriptor(
        media_type=MANIFEST,
        digest=digest,
        size=len(data),
        annotations={CREATED: stamp},
        artifact_type=NFD_ARTIFACT_TYPE,
    )
    add_index_entry(layout, descriptor)
    log.info("attached %s to %s in %s", digest, image_ref, layout)

    for warning in passed_over(layout, image.digest, subject, descriptor):
        log.warning("%s: %s", image_ref, warning)
    return descriptor


def passed_over(
    layout: Path, image_digest: str, subject: Descriptor, attached: Descriptor
) -> list[str]:
    """Where the reader chooses another artifact than the one attached, and why.

    One line per platform (or one for a single-manifest image) whose choice is
    not `attached`; platforms other than `subject` are left out when `subject`
    is a platform manifest.
    """
    images = [i for i in scan_layouts([layout]).images if i.digest == image_digest]
    to_index = subject.digest == image_digest
    stamp = attached.annotations.get(CREATED)
    lines = []
    for choice in images[0].choices if images else ():
        if (
            not to_index
            and choice.platform
            and choice.platform.digest != subject.digest
        ):
            continue
        artifact = choice.artifact
        if artifact is not None and artifact.digest == attached.digest:
            continue

        where = choice.platform.name if choice.platform else "the image"
        winner = artifact.digest if artifact else "(unreadable)"
        if to_index and choice.source == "platform":
            why = "the platform manifest's own artifact wins over the image's"
        elif artifact is None:
            why = "newer, by its created annotation"
        elif artifact.created == stamp:
            why = f"created at the same time ({stamp}); the greater digest wins"
        else:
            why = f"newer: created {artifact.created}, this one {stamp}"
        lines.append(f"{where} will still use artifact {winner} ({why})")
    return lines


def format_created(moment: datetime) -> str:
    """A timestamp as `oras attach` writes it: RFC 3339, UTC, whole seconds."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_spec(path: Path, force: bool) -> bytes:
    """Read a spec file and validate it before anything is written."""
    try:
        data = read_bounded(path, MAX_SPEC_BYTES, str(path))
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except BlobError as exc:
        raise SpecError(str(exc)) from None

    _check_spec_lightly(data, str(path))
    from fleetcompat.spec import check_spec, load_spec

    problems = check_spec(load_spec(path))
    if problems and not force:
        listed = "".join(f"\n  {problem}" for problem in problems)
        raise SpecError(
            f"{path}: NFD would fail evaluating this spec ({len(problems)} "
            f"problems; --force attaches it anyway):{listed}"
        )
    for problem in problems:
        log.warning("%s: %s", path, problem)
    return data


def _check_spec_lightly(data: bytes, source: str) -> None:
    """Check that a spec parses and has a compatibilities list.

    NFD reads the layer as an image-compatibility spec only, so a NodeFeatureRule
    (which `load_spec` also accepts) is refused here.
    """
    try:
        document = parse_text(data, source)
    except InputError as exc:
        raise SpecError(str(exc)) from None
    sets = document.get("compatibilities") if isinstance(document, dict) else None
    if not isinstance(sets, list) or not sets:
        raise SpecError(f"{source}: has no compatibilities list; not an NFD spec")


def _subject(
    layout: Path, image_ref: str, platform: str | None
) -> tuple[Image, Descriptor]:
    """The image, and the descriptor of it (or its platform manifest) to attach to."""
    catalog = scan_layouts([layout])
    if len(catalog.layouts) != 1:
        raise LayoutError(f"{layout}: a directory of layouts; name one layout")
    image = find_image(catalog, image_ref)
    if image.problems and not image.choices:
        raise LayoutError(f"{image_ref}: {image.problems[0]}")

    if platform is None:
        return image, Descriptor(image.media_type, image.digest, image.size)
    return image, _platform_descriptor(image, platform)


def _platform_descriptor(image: Image, platform: str) -> Descriptor:
    """The manifest of one platform of a multi-platform image."""
    for candidate in image.platforms:
        if candidate.name == platform or (
            candidate.variant and f"{candidate.os}/{candidate.architecture}" == platform
        ):
            return Descriptor(candidate.media_type, candidate.digest, candidate.size)
    known = ", ".join(p.name for p in image.platforms) or "none"
    raise LayoutError(f"{image.name}: no platform {platform} (it has: {known})")


def _manifest(
    subject: Descriptor, spec_digest: str, spec_size: int, title: str, stamp: str
) -> dict[str, Any]:
    """The artifact manifest, with fields in the order oras-go writes them."""
    return {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": NFD_ARTIFACT_TYPE,
        "config": {
            "mediaType": EMPTY,
            "digest": EMPTY_DIGEST,
            "size": 2,
            "data": "e30=",
        },
        "layers": [
            {
                "mediaType": NFD_SPEC_MEDIA_TYPE,
                "digest": spec_digest,
                "size": spec_size,
                "annotations": {TITLE: title},
            }
        ],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        },
        "annotations": {CREATED: stamp},
    }


def add_index_entry(layout: Path, descriptor: Descriptor) -> None:
    """Add a descriptor to `index.json` unless present; replace the file atomically."""
    path = layout / "index.json"
    try:
        data = read_bounded(path, MAX_INDEX_JSON_BYTES, str(path))
    except FileNotFoundError:
        raise LayoutError(f"{path}: missing; not an OCI image layout") from None
    index = parse_json(data, str(path))
    manifests = index.setdefault("manifests", [])
    if not isinstance(manifests, list):
        raise LayoutError(f"{path}: manifests is not a list")

    entry = descriptor.to_json()
    if entry in manifests:
        return
    manifests.append(entry)
    write_atomically(path, canonical_json(index))
