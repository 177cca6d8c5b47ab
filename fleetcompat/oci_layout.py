"""The walk through one OCI image layout: entries, manifests, referrers, choices.

`read_layout(path)` reads `oci-layout` and `index.json`, loads every manifest and
index reachable from `index.json` (through nested indexes, tag-schema indexes and
multi-platform indexes; each digest once, so cycles end, and never deeper than
`MAX_DEPTH`), records every `subject` link, and then decides which entries are
images and which artifact each image gets (see `fleetcompat.oci`).

What is read is verified (see `fleetcompat.oci_blobs`); whatever is broken becomes a
problem on the image it belongs to, or on the layout when it belongs to none, and
reading goes on. Blobs not needed (layers, configs, unselected manifests) may be
missing. Referrers that are not reachable from `index.json` are not found: like
oras-go, nothing scans `blobs/` for them.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetcompat.documents import parse_text
from fleetcompat.errors import InputError
from fleetcompat.oci import (
    Artifact,
    Choice,
    Image,
    PlatformManifest,
    Source,
    parse_created,
)
from fleetcompat.oci_blobs import (
    CREATED,
    INDEX_TYPES,
    LEGACY_ARTIFACT,
    MANIFEST_TYPES,
    MAX_INDEX_JSON_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_SPEC_BYTES,
    NFD_ARTIFACT_TYPE,
    BlobError,
    Descriptor,
    parse_descriptor,
    parse_json,
    read_blob,
    read_bounded,
)
from fleetcompat.spec import spec_problems

log = logging.getLogger(__name__)

LAYOUT_VERSION = "1.0.0"
"""The only `imageLayoutVersion` there is (image-spec v1.0 and v1.1 alike)."""

MAX_DEPTH = 16
"""Deepest chain of nested indexes followed from `index.json`."""

MAX_MANIFESTS = 100_000
"""Most manifests and indexes loaded from one layout."""

_Summary = tuple[int | None, tuple[str, ...], tuple[str, ...]]
"""A spec's set count, its tags, and its problems."""

IMAGE_CONFIG_TYPES = frozenset(
    {
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.container.image.v1+json",
    }
)

_TAG_SCHEMA = re.compile(r"(sha256|sha512)-([0-9a-f]{64})")
_COSIGN_TAG = re.compile(r"sha256-[0-9a-f]{64}\.(sig|att|sbom)$")


@dataclass
class _Node:
    """A manifest or index loaded from the layout (or the reason it was not)."""

    descriptor: Descriptor
    document: dict[str, Any] | None = None
    error: str | None = None
    subject: Descriptor | None = None
    children: list[Descriptor] = field(default_factory=list)

    @property
    def is_index(self) -> bool:
        """Whether this is an image index (or a Docker manifest list)."""
        return self.descriptor.media_type in INDEX_TYPES

    @property
    def artifact_type(self) -> str | None:
        """artifactType, falling back to config.mediaType as the spec says."""
        if self.document is None:
            return self.descriptor.artifact_type
        declared = self.document.get("artifactType")
        if isinstance(declared, str) and declared:
            return declared
        config = self.document.get("config")
        if isinstance(config, dict) and isinstance(config.get("mediaType"), str):
            return str(config["mediaType"])
        return None

    @property
    def created(self) -> str | None:
        """The created annotation of the manifest, if it is a string."""
        annotations = (self.document or {}).get("annotations")
        value = annotations.get(CREATED) if isinstance(annotations, dict) else None
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class LayoutContents:
    """What one layout held: its images, its own problems, and hints."""

    images: tuple[Image, ...]
    problems: tuple[str, ...]
    hints: tuple[str, ...]


def read_layout(layout: Path) -> LayoutContents:
    """Read one layout; anything broken is reported, never raised."""
    reader = _LayoutReader(layout)
    try:
        entries = reader.read_entries()
    except InputError as exc:
        return LayoutContents((), (str(exc),), ())

    reader.walk(entries)
    reader.link_tag_schema(entries)
    images = [
        reader.build_image(d, names) for d, names in reader.image_entries(entries)
    ]
    log.debug(
        "layout=%s: %d manifests loaded, %d images",
        layout,
        len(reader.nodes),
        len(images),
    )
    return LayoutContents(tuple(images), tuple(reader.problems), reader.hints(images))


class _LayoutReader:
    """The state of reading one layout: loaded nodes and subject links."""

    def __init__(self, layout: Path) -> None:
        self.layout = layout
        self.nodes: dict[str, _Node] = {}
        self.child_digests: set[str] = set()
        self.referrers: dict[str, list[_Node]] = {}
        self.broken_referrers: dict[str, list[str]] = {}
        self.tag_schema: set[str] = set()
        self.listed_subject: dict[str, str] = {}
        self.problems: list[str] = []
        self._artifacts: dict[str, Artifact | str] = {}
        self._spec_errors: dict[str, tuple[str, ...]] = {}
        self._summaries: dict[str, _Summary] = {}

    def read_entries(self) -> list[Descriptor]:
        """Check `oci-layout` and read the descriptors listed in `index.json`."""
        self._check_version()
        what = f"{self.layout}/index.json"
        try:
            data = read_bounded(self.layout / "index.json", MAX_INDEX_JSON_BYTES, what)
        except FileNotFoundError:
            raise InputError(f"{what}: missing; not a complete OCI layout") from None
        index = parse_json(data, what)

        manifests = index.get("manifests")
        if not isinstance(manifests, list):
            raise BlobError(f"{what}: has no manifests list")
        entries = []
        for number, item in enumerate(manifests, 1):
            try:
                entries.append(parse_descriptor(item, f"{what} entry #{number}"))
            except BlobError as exc:
                self.problems.append(str(exc))
        return entries

    def _check_version(self) -> None:
        """Refuse a layout whose `oci-layout` names a version we do not read."""
        what = f"{self.layout}/oci-layout"
        try:
            data = read_bounded(self.layout / "oci-layout", 64 * 1024, what)
        except FileNotFoundError:
            raise InputError(f"{what}: missing; not an OCI image layout") from None
        version = parse_json(data, what).get("imageLayoutVersion")
        if version != LAYOUT_VERSION:
            raise InputError(
                f"{what}: imageLayoutVersion {version!r} is not supported "
                f"(only {LAYOUT_VERSION!r})"
            )

    def walk(self, entries: list[Descriptor]) -> None:
        """Load everything reachable from the entries, each digest once."""
        queue = deque((entry, 0) for entry in entries)
        while queue:
            descriptor, depth = queue.popleft()
            known = descriptor.media_type in MANIFEST_TYPES | INDEX_TYPES
            if descriptor.digest in self.nodes or not known:
                continue
            if len(self.nodes) >= MAX_MANIFESTS:
                self.problems.append(
                    f"{self.layout}: more than {MAX_MANIFESTS} manifests; "
                    "the rest were not read"
                )
                return

            node = self._load(descriptor)
            self.nodes[descriptor.digest] = node
            if node.subject is not None:
                self.referrers.setdefault(node.subject.digest, []).append(node)
            if node.children and depth >= MAX_DEPTH:
                node.error = f"indexes nested deeper than {MAX_DEPTH} levels"
                continue
            for child in node.children:
                self.child_digests.add(child.digest)
                queue.append((child, depth + 1))

    def _load(self, descriptor: Descriptor) -> _Node:
        """Read and check one manifest or index; a failure is kept on the node."""
        node = _Node(descriptor)
        try:
            data = read_blob(self.layout, descriptor, MAX_MANIFEST_BYTES)
            node.document = parse_json(data, f"{self.layout}: {descriptor.digest}")
            self._check_shape(node)
        except BlobError as exc:
            node.document = None
            node.error = str(exc)
        return node

    def _check_shape(self, node: _Node) -> None:
        """Check the media type and fields, and pick out children and subject."""
        descriptor, document = node.descriptor, node.document or {}
        what = f"{self.layout}: {descriptor.digest}"
        declared = document.get("mediaType")
        if declared is not None and declared != descriptor.media_type:
            raise BlobError(
                f"{what}: described as {descriptor.media_type} but the blob says "
                f"{declared!r}"
            )

        if node.is_index:
            manifests = document.get("manifests")
            if not isinstance(manifests, list):
                raise BlobError(f"{what}: an index without a manifests list")
            node.children = [
                parse_descriptor(item, f"{what} manifests[{n}]")
                for n, item in enumerate(manifests)
            ]
        elif descriptor.media_type == LEGACY_ARTIFACT:
            if not isinstance(document.get("blobs", []), list):
                raise BlobError(f"{what}: an artifact manifest whose blobs is no list")
        elif not isinstance(document.get("layers"), list):
            raise BlobError(f"{what}: a manifest without a layers list")

        if "subject" in document:
            node.subject = parse_descriptor(document["subject"], f"{what} subject")

    def link_tag_schema(self, entries: list[Descriptor]) -> None:
        """Add referrers listed in `sha256-<hex>` tag-schema indexes."""
        for entry in entries:
            match = _TAG_SCHEMA.fullmatch(entry.ref_name or "")
            if match is None or entry.media_type not in INDEX_TYPES:
                continue
            self.tag_schema.add(entry.digest)
            subject = self._subject_for_tag(match.group(1), match.group(2))
            index = self.nodes.get(entry.digest)
            if index is None or index.error:
                self._note_broken(subject, index)
                continue

            for listed in index.children:
                node = self.nodes.get(listed.digest)
                if node is None or node.error:
                    if listed.artifact_type == NFD_ARTIFACT_TYPE:
                        self._note_broken(subject, node, listed)
                    continue
                if node.subject is None:
                    self.referrers.setdefault(subject, []).append(node)
                    self.listed_subject[listed.digest] = subject

    def _subject_for_tag(self, algorithm: str, encoded: str) -> str:
        """The digest a tag-schema tag names (sha512 tags hold a truncated hex)."""
        prefix = f"{algorithm}:{encoded}"
        if algorithm == "sha256":
            return prefix
        return next((d for d in self.nodes if d.startswith(prefix)), prefix)

    def _note_broken(
        self, subject: str, node: _Node | None, listed: Descriptor | None = None
    ) -> None:
        """Remember an unreadable referrer of a subject, to report on its image."""
        digest = listed.digest if listed else "its tag-schema index"
        reason = node.error if node and node.error else "missing from the layout"
        self.broken_referrers.setdefault(subject, []).append(
            f"referrer {digest} cannot be used: {reason}"
        )

    def image_entries(
        self, entries: list[Descriptor]
    ) -> list[tuple[Descriptor, list[str]]]:
        """The entries that are images, each digest once with all its names."""
        images: dict[str, tuple[Descriptor, list[str]]] = {}
        for entry in entries:
            if not self._is_image(entry):
                continue
            _, names = images.setdefault(entry.digest, (entry, []))
            if entry.ref_name and entry.ref_name not in names:
                names.append(entry.ref_name)
        return list(images.values())

    def _is_image(self, entry: Descriptor) -> bool:
        """Whether an index.json entry is an image (not a referrer, child or tag)."""
        name = entry.ref_name
        node = self.nodes.get(entry.digest)
        if entry.digest in self.tag_schema or node is None:
            return False
        if name and _COSIGN_TAG.search(name):
            return False
        if node.error:
            return self._broken_entry_is_image(entry, node)
        image_like = node.is_index or node.artifact_type in IMAGE_CONFIG_TYPES
        if node.subject is not None:
            return bool(name) and image_like
        if name:
            return True
        return image_like and entry.digest not in self.child_digests

    def _broken_entry_is_image(self, entry: Descriptor, node: _Node) -> bool:
        """Whether an unreadable entry is reported as an image or as the layout's."""
        if entry.ref_name:
            return True
        if entry.digest in self.child_digests:
            return False
        if entry.artifact_type:
            self.problems.append(
                f"untagged {entry.artifact_type} entry {entry.digest} cannot be "
                f"read, so what it refers to is unknown: {node.error}"
            )
            return False
        return True

    def build_image(self, entry: Descriptor, names: list[str]) -> Image:
        """An Image with its platforms and the artifact chosen for each."""
        node = self.nodes[entry.digest]
        problems = list(self.broken_referrers.get(entry.digest, []))
        platforms: list[PlatformManifest] = []
        choices: list[Choice] = []

        if node.error:
            problems.append(f"image manifest cannot be read: {node.error}")
        elif node.is_index:
            platforms = self._platforms(node, set(), problems)
            own = self._candidates(entry.digest)
            for platform in platforms:
                choices.append(self._choose_platform(platform, own, problems))
            if not platforms:
                choices.append(self._choice(None, own, "index", problems))
        else:
            platforms = _descriptor_platform(entry)
            own = self._candidates(entry.digest)
            choices.append(self._choice(None, own, "manifest", problems))

        return Image(
            layout=self.layout,
            references=tuple(names),
            digest=entry.digest,
            media_type=entry.media_type,
            size=entry.size,
            platforms=tuple(platforms),
            choices=tuple(choices),
            problems=tuple(problems),
        )

    def _platforms(
        self, index: _Node, seen: set[str], problems: list[str]
    ) -> list[PlatformManifest]:
        """The platform manifests of an index, through nested indexes."""
        seen.add(index.descriptor.digest)
        if index.error:
            problems.append(f"nested index {index.descriptor.digest}: {index.error}")
            return []
        found = []
        for child in index.children:
            nested = self.nodes.get(child.digest)
            if child.media_type in INDEX_TYPES and nested:
                if child.digest not in seen:
                    found.extend(self._platforms(nested, seen, problems))
                continue
            found.extend(_descriptor_platform(child))
        return found

    def _choose_platform(
        self, platform: PlatformManifest, own: list[_Node], problems: list[str]
    ) -> Choice:
        """The platform's own newest artifact, else the index's newest."""
        problems.extend(self.broken_referrers.get(platform.digest, []))
        specific = self._candidates(platform.digest)
        if specific:
            return self._choice(platform, specific, "platform", problems)
        return self._choice(platform, own, "index", problems)

    def _candidates(self, subject: str) -> list[_Node]:
        """The NFD artifacts referring to a subject, each digest once."""
        unique: dict[str, _Node] = {}
        for node in self.referrers.get(subject, []):
            if node.artifact_type == NFD_ARTIFACT_TYPE:
                unique[node.descriptor.digest] = node
        return list(unique.values())

    def _choice(
        self,
        platform: PlatformManifest | None,
        candidates: list[_Node],
        source: Source,
        problems: list[str],
    ) -> Choice:
        """Pick the newest candidate and read its spec."""
        if not candidates:
            return Choice(platform, None, None, 0)
        newest = max(
            candidates,
            key=lambda n: (parse_created(n.created), n.descriptor.digest),
        )

        artifact = self._artifact(newest)
        if isinstance(artifact, str):
            where = f"{platform.name}: " if platform else ""
            if artifact not in problems and where + artifact not in problems:
                problems.append(where + artifact)
            return Choice(platform, None, source, len(candidates))
        for error in self._spec_errors.get(artifact.digest, ()):
            if error not in problems:
                problems.append(error)
        return Choice(platform, artifact, source, len(candidates))

    def _artifact(self, node: _Node) -> Artifact | str:
        """The Artifact for a referrer node, or why its spec cannot be read."""
        digest = node.descriptor.digest
        if digest not in self._artifacts:
            self._artifacts[digest] = self._read_artifact(node)
        return self._artifacts[digest]

    def _read_artifact(self, node: _Node) -> Artifact | str:
        """Read the spec layer of an artifact; a string says what went wrong."""
        document = node.document or {}
        key = "blobs" if node.descriptor.media_type == LEGACY_ARTIFACT else "layers"
        layers = document.get(key) or []
        digest = node.descriptor.digest
        if not layers:
            return (
                f"artifact {digest} has no layers (NFD: compatibility layer not found)"
            )

        try:
            layer = parse_descriptor(layers[0], f"artifact {digest} {key}[0]")
            spec = read_blob(self.layout, layer, MAX_SPEC_BYTES)
        except BlobError as exc:
            return f"spec of artifact {digest}: {exc}"
        if layer.digest not in self._summaries:
            source = f"spec {layer.digest}"
            self._summaries[layer.digest] = _summarize_spec(spec, source)
        count, tags, errors = self._summaries[layer.digest]
        if errors:
            self._spec_errors[digest] = errors
        subject = node.subject.digest if node.subject else self.listed_subject[digest]
        return Artifact(
            digest=digest,
            subject=subject,
            created=node.created,
            created_at=parse_created(node.created),
            spec_bytes=spec,
            spec_digest=layer.digest,
            layout=self.layout,
            media_type=node.descriptor.media_type,
            compatibility_count=count,
            tags=tags,
        )

    def hints(self, images: list[Image]) -> tuple[str, ...]:
        """Advice for layouts that look copied without referrers, or rewritten."""
        hints = []
        nfd = [
            n
            for nodes in self.referrers.values()
            for n in nodes
            if n.artifact_type == NFD_ARTIFACT_TYPE
        ]
        if images and not self.referrers and not self.tag_schema:
            hints.append(
                f"{self.layout}: no referrers at all; the layout was probably copied "
                "without them (skopeo and umoci do not copy referrers). Copy with "
                "`oras cp -r --to-oci-layout` or `fleetcompat mirror`, or add specs "
                "with `fleetcompat attach`"
            )
        dangling = sorted(
            {n.subject.digest for n in nfd if n.subject and not self._known(n)}
        )
        for subject in dangling:
            hints.append(
                f"{self.layout}: compatibility artifacts refer to {subject}, which is "
                "not in this layout (were digests rewritten by a copy, e.g. skopeo "
                "without --preserve-digests?)"
            )
        return tuple(hints)

    def _known(self, node: _Node) -> bool:
        """Whether a referrer's subject was loaded from the layout."""
        return node.subject is not None and node.subject.digest in self.nodes


def _descriptor_platform(descriptor: Descriptor) -> list[PlatformManifest]:
    """The platform a descriptor declares, unless absent or an attestation."""
    platform = descriptor.platform or {}
    os_name, arch = platform.get("os"), platform.get("architecture")
    if not isinstance(os_name, str) or not isinstance(arch, str):
        return []
    if os_name == "unknown" or arch == "unknown":
        return []
    variant = platform.get("variant")
    return [
        PlatformManifest(
            os=os_name,
            architecture=arch,
            variant=variant if isinstance(variant, str) and variant else None,
            digest=descriptor.digest,
            media_type=descriptor.media_type,
            size=descriptor.size,
        )
    ]


def _summarize_spec(spec: bytes, source: str) -> _Summary:
    """Count a spec's compatibility sets and list their tags; or say what is wrong.

    What is wrong: the spec does not parse as NFD reads it, or `check_spec` finds
    errors NFD would raise evaluating it.
    """
    try:
        document = parse_text(spec, source)
    except InputError as exc:
        return None, (), (str(exc),)
    sets = document.get("compatibilities") if isinstance(document, dict) else None
    if not isinstance(sets, list):
        return None, (), (f"{source}: has no compatibilities list",)
    tags = []
    for item in sets:
        tag = item.get("tag") if isinstance(item, dict) else None
        if isinstance(tag, str) and tag and tag not in tags:
            tags.append(tag)
    return len(sets), tuple(tags), tuple(spec_problems(spec, source))
