"""Copy images' compatibility artifacts from a registry into an OCI layout.

The connected side of the air gap: `mirror(references, layout)` fetches each
image's manifest (index and platform manifests), every NFD compatibility artifact
referring to the index or to a platform manifest, and the artifacts' blobs, and
writes them as `oras cp -r --to-oci-layout` would: the image tagged in
`index.json`, platform manifests and artifacts as untagged entries. Referrers are
listed through the registry's referrers API, falling back to the
`sha256-<hex>` tag schema when the registry answers 404 (distribution 2.x has no
such API). Every manifest and blob fetched is hashed and checked against its
digest before it is written.

The image manifests are always copied (they are small, and an artifact is only
usable beside its subject); `with_images` adds the image configs and layers, which
makes the layout a complete copy. This is the only module that imports `oras`.
Registry credentials come from the Docker config, as oras-py reads them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import oras.container
import oras.provider
import requests

from fleetcompat.errors import FleetcompatError, InputError, LayoutError
from fleetcompat.oci_blobs import (
    EMPTY_DIGEST,
    INDEX,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MAX_MANIFEST_BYTES,
    MAX_SPEC_BYTES,
    NFD_ARTIFACT_TYPE,
    REF_NAME,
    BlobError,
    Descriptor,
    blob_path,
    canonical_json,
    parse_descriptor,
    parse_json,
    read_bounded,
    verify_digest,
    write_atomically,
)

log = logging.getLogger(__name__)

ACCEPT_MANIFESTS = ", ".join(sorted(MANIFEST_TYPES | INDEX_TYPES))
CHUNK = 1024 * 1024
MAX_REFERRER_PAGES = 100
"""Most pages of a paginated referrers answer followed (`Link: <…>; rel="next"`)."""


class MirrorError(FleetcompatError):
    """One reference could not be copied; the message says which and why."""


@dataclass(frozen=True)
class MirroredImage:
    """What was copied for one reference, or why it was not."""

    reference: str
    digest: str | None
    artifacts: tuple[str, ...]
    problem: str | None


@dataclass(frozen=True)
class MirrorResult:
    """The outcome of a mirror run, one entry per reference."""

    layout: Path
    images: tuple[MirroredImage, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data for `mirror --output json`."""
        return {
            "layout": str(self.layout),
            "images": [
                {
                    "reference": item.reference,
                    "digest": item.digest,
                    "artifacts": list(item.artifacts),
                    "problem": item.problem,
                }
                for item in self.images
            ],
        }


def mirror(
    references: list[str],
    layout: Path,
    *,
    plain_http: bool = False,
    with_images: bool = False,
) -> MirrorResult:
    """Copy each reference's image manifests and NFD artifacts into a layout.

    Raises LayoutError when the layout cannot be created or is not one; a
    reference that cannot be copied is reported in the result instead.
    """
    layout = Path(layout)
    _ensure_layout(layout)
    registry = oras.provider.Registry(insecure=plain_http)

    results = []
    for reference in references:
        copier = _Copier(registry, reference, layout, with_images)
        try:
            results.append(copier.copy())
        except (MirrorError, InputError, requests.RequestException, ValueError) as exc:
            log.warning("mirror %s failed: %s", reference, exc)
            results.append(MirroredImage(reference, None, (), str(exc)))
    return MirrorResult(layout, tuple(results))


class _Copier:
    """Copies one reference: its manifests, referrers and blobs, verified."""

    def __init__(
        self,
        registry: oras.provider.Registry,
        reference: str,
        layout: Path,
        with_images: bool,
    ) -> None:
        self.registry = registry
        self.reference = reference
        self.container = oras.container.Container(reference)
        self.layout = layout
        self.with_images = with_images
        self.base = (
            f"{registry.prefix}://{self.container.registry}"
            f"/v2/{self.container.api_prefix}"
        )
        self.entries: list[Descriptor] = []

    def copy(self) -> MirroredImage:
        """Copy the image and its artifacts; add everything to index.json."""
        by_digest = self.container.digest
        target = by_digest or self.container.tag
        root, data = self._manifest(target, by_digest)

        subjects = [root]
        document = parse_json(data, f"{self.reference}: manifest")
        if root.media_type in INDEX_TYPES:
            for number, item in enumerate(document.get("manifests") or []):
                child = parse_descriptor(item, f"{self.reference} manifests[{number}]")
                if child.media_type in MANIFEST_TYPES:
                    self._copy_manifest(child)
                    subjects.append(child)
        elif self.with_images:
            self._copy_image_blobs(document)

        artifacts = []
        for subject in subjects:
            for listed in self._referrers(subject):
                copied = self._copy_artifact(listed, subject)
                if copied is not None:
                    artifacts.append(copied)

        name = None if by_digest else self._tag_name()
        self.entries.insert(0, _with_ref_name(root, name))
        add_entries(self.layout, self.entries)
        return MirroredImage(self.reference, root.digest, tuple(artifacts), None)

    def _tag_name(self) -> str:
        """The ref.name written for the image: its full reference, as zarf does."""
        container = self.container
        repository = container.api_prefix
        return f"{container.registry}/{repository}:{container.tag}"

    def _manifest(self, target: str, expected: str | None) -> tuple[Descriptor, bytes]:
        """Fetch and store a manifest; return its descriptor and bytes."""
        url = f"{self.base}/manifests/{target}"
        response = self._get(url, {"Accept": ACCEPT_MANIFESTS})
        if response.status_code == 404:
            raise MirrorError(f"{self.reference}: {target} not found in the registry")
        data = _read_response(response, MAX_MANIFEST_BYTES, url)

        digest = expected or "sha256:" + hashlib.sha256(data).hexdigest()
        verify_digest(data, digest, f"{self.reference}: manifest {target}")
        header = response.headers.get("Docker-Content-Digest")
        if header and header != digest and header.startswith("sha256:"):
            raise MirrorError(
                f"{self.reference}: registry says {header} but the manifest it sent "
                f"hashes to {digest}"
            )
        media_type = _media_type(response, data)
        _store(self.layout, data, digest)
        return Descriptor(media_type, digest, len(data)), data

    def _copy_manifest(self, child: Descriptor) -> None:
        """Copy a platform manifest (and, with images, its config and layers)."""
        _, data = self._manifest(child.digest, child.digest)
        self.entries.append(child)
        if self.with_images:
            self._copy_image_blobs(parse_json(data, f"manifest {child.digest}"))

    def _copy_image_blobs(self, document: dict[str, Any]) -> None:
        """Copy an image manifest's config and layers, streamed and verified."""
        layers = document.get("layers")
        if not isinstance(layers, list):
            raise MirrorError(f"{self.reference}: a manifest without a layers list")
        for number, item in enumerate([document.get("config"), *layers]):
            blob = parse_descriptor(item, f"{self.reference} blob #{number}")
            self._stream_blob(blob)

    def _referrers(self, subject: Descriptor) -> list[Descriptor]:
        """The NFD artifacts referring to a subject: the API, else the tag schema."""
        url = (
            f"{self.base}/referrers/{subject.digest}"
            f"?artifactType={quote(NFD_ARTIFACT_TYPE, safe='')}"
        )
        listed: list[Descriptor] = []
        for page in range(MAX_REFERRER_PAGES):
            response = self._get(url, {"Accept": INDEX})
            if response.status_code == 404 and page == 0:
                return self._referrers_by_tag(subject)
            listed += self._listed(response, url)
            link = response.links.get("next", {}).get("url")
            if not link:
                break
            url = urljoin(url, link)
        return [d for d in listed if d.artifact_type == NFD_ARTIFACT_TYPE]

    def _referrers_by_tag(self, subject: Descriptor) -> list[Descriptor]:
        """The NFD artifacts listed in the subject's `sha256-<hex>` index."""
        log.debug("no referrers API at %s; trying the tag schema", self.base)
        algorithm, _, encoded = subject.digest.partition(":")
        url = f"{self.base}/manifests/{algorithm}-{encoded[:64]}"
        response = self._get(url, {"Accept": INDEX})
        if response.status_code == 404:
            return []
        listed = self._listed(response, url)
        return [d for d in listed if d.artifact_type == NFD_ARTIFACT_TYPE]

    def _listed(self, response: requests.Response, url: str) -> list[Descriptor]:
        """The descriptors of an index in a response."""
        index = parse_json(_read_response(response, MAX_MANIFEST_BYTES, url), url)
        return [
            parse_descriptor(item, f"{url} manifests[{n}]")
            for n, item in enumerate(index.get("manifests") or [])
        ]

    def _copy_artifact(self, listed: Descriptor, subject: Descriptor) -> str | None:
        """Copy one artifact manifest and its blobs; return its digest.

        An artifact listed for a subject it does not name is skipped (None).
        """
        _, data = self._manifest(listed.digest, listed.digest)
        document = parse_json(data, f"artifact {listed.digest}")
        named = (document.get("subject") or {}).get("digest")
        if named != subject.digest:
            log.warning(
                "%s: artifact %s is listed as a referrer of %s but names %s as its "
                "subject; skipped",
                self.reference,
                listed.digest,
                subject.digest,
                named,
            )
            return None

        config = parse_descriptor(document.get("config"), "artifact config")
        if config.digest == EMPTY_DIGEST:
            _store(self.layout, b"{}", EMPTY_DIGEST)
        else:
            self._small_blob(config)
        for number, item in enumerate(document.get("layers") or []):
            self._small_blob(parse_descriptor(item, f"artifact layers[{number}]"))

        annotations = document.get("annotations") or {}
        self.entries.append(
            Descriptor(
                listed.media_type,
                listed.digest,
                len(data),
                {k: v for k, v in annotations.items() if isinstance(v, str)},
                NFD_ARTIFACT_TYPE,
            )
        )
        return listed.digest

    def _small_blob(self, blob: Descriptor) -> None:
        """Fetch a small blob (a spec or config) whole, verify and store it."""
        if blob.size > MAX_SPEC_BYTES:
            raise MirrorError(f"blob {blob.digest}: {blob.size} bytes is too large")
        url = f"{self.base}/blobs/{blob.digest}"
        response = self._get(url, {})
        if response.status_code != 200:
            raise MirrorError(f"{url}: HTTP {response.status_code}")
        data = _read_response(response, MAX_SPEC_BYTES, url)
        _store(self.layout, data, blob.digest)

    def _stream_blob(self, blob: Descriptor) -> None:
        """Stream a blob of any size to the layout, hashing as it arrives."""
        path = blob_path(self.layout, blob.digest)
        if path.is_file() and path.stat().st_size == blob.size:
            return
        url = f"{self.base}/blobs/{blob.digest}"
        response = self._get(url, {})
        if response.status_code != 200:
            raise MirrorError(f"{url}: HTTP {response.status_code}")

        algorithm, _, encoded = blob.digest.partition(":")
        hasher = hashlib.new(algorithm)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            size = 0
            with temp.open("wb") as stream:
                for chunk in response.iter_content(CHUNK):
                    size += len(chunk)
                    if size > blob.size:
                        raise MirrorError(f"{url}: longer than its {blob.size} bytes")
                    hasher.update(chunk)
                    stream.write(chunk)
            if size != blob.size or hasher.hexdigest() != encoded:
                raise MirrorError(f"{url}: content does not match {blob.digest}")
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)

    def _get(self, url: str, headers: dict[str, str]) -> requests.Response:
        """GET through oras-py's session (auth, retries), streamed."""
        response: requests.Response = self.registry.do_request(
            url, "GET", headers=dict(headers), stream=True
        )
        return response


def _read_response(response: requests.Response, limit: int, url: str) -> bytes:
    """Read a response body of at most `limit` bytes."""
    if response.status_code != 200:
        raise MirrorError(f"{url}: HTTP {response.status_code}")
    data = bytearray()
    for chunk in response.iter_content(CHUNK):
        data.extend(chunk)
        if len(data) > limit:
            response.close()
            raise MirrorError(f"{url}: more than the {limit} bytes accepted")
    return bytes(data)


def _media_type(response: requests.Response, data: bytes) -> str:
    """A manifest's media type: from its mediaType field, else Content-Type."""
    try:
        declared = json.loads(data).get("mediaType")
    except (ValueError, AttributeError):
        declared = None
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    media_type = declared or content_type
    if media_type not in MANIFEST_TYPES | INDEX_TYPES:
        raise MirrorError(f"unsupported manifest media type {media_type!r}")
    return str(media_type)


def _store(layout: Path, data: bytes, digest: str) -> None:
    """Write verified bytes under their digest (skipped when already there)."""
    verify_digest(data, digest, f"blob {digest}")
    path = blob_path(layout, digest)
    if path.is_file() and path.stat().st_size == len(data):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, data)


def _with_ref_name(descriptor: Descriptor, name: str | None) -> Descriptor:
    """A descriptor carrying a ref.name annotation (or none when untagged)."""
    if name is None:
        return descriptor
    annotations = {**descriptor.annotations, REF_NAME: name}
    return Descriptor(
        descriptor.media_type, descriptor.digest, descriptor.size, annotations
    )


def _ensure_layout(layout: Path) -> None:
    """Create an empty layout, or check that an existing directory is one."""
    marker = layout / "oci-layout"
    if marker.exists():
        try:
            version = parse_json(read_bounded(marker, 65536, str(marker)), str(marker))
        except BlobError as exc:
            raise LayoutError(str(exc)) from None
        if version.get("imageLayoutVersion") != "1.0.0":
            raise LayoutError(f"{marker}: unsupported imageLayoutVersion")
        return
    if layout.exists() and any(layout.iterdir()):
        raise LayoutError(f"{layout}/: not empty and no oci-layout file; not a layout")

    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    write_atomically(marker, b'{"imageLayoutVersion":"1.0.0"}')
    empty = {"schemaVersion": 2, "mediaType": INDEX, "manifests": []}
    write_atomically(layout / "index.json", canonical_json(empty))


def add_entries(layout: Path, entries: list[Descriptor]) -> None:
    """Merge descriptors into index.json: a tag moves, untagged ones are added once."""
    path = layout / "index.json"
    index = parse_json(read_bounded(path, 16 * 1024 * 1024, str(path)), str(path))
    manifests = [m for m in index.get("manifests") or [] if isinstance(m, dict)]

    for entry in entries:
        data = entry.to_json()
        name = entry.ref_name
        if name is not None:
            manifests = [m for m in manifests if _ref_name(m) != name]
        elif any(
            m.get("digest") == entry.digest and not _ref_name(m) for m in manifests
        ):
            continue
        manifests.append(data)

    index["manifests"] = manifests
    write_atomically(path, canonical_json(index))


def _ref_name(entry: dict[str, Any]) -> str | None:
    """The ref.name annotation of a raw index.json entry."""
    annotations = entry.get("annotations")
    return annotations.get(REF_NAME) if isinstance(annotations, dict) else None
