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

Requests go through oras-py's session (for its authentication) but not through
its retry wrapper, which retries any failure five times with growing pauses (over
two minutes for a name that does not resolve). Here every request has a connect
and a read timeout, and every answer a deadline: requests' read timeout bounds
each read, so a registry sending one byte at a time would otherwise hold a copy
for ever. A manifest, listing or spec must arrive whole within the timeout,
counted from the request; a streamed image blob gets the timeout plus a second
for each `MIN_BLOB_RATE` bytes of its declared size. A refused connection is
retried once after a short pause, and nothing else is retried. Network failures
become one-line messages naming the registry ("registry.example.invalid: name does
not resolve").
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import oras.provider
import requests
import requests.adapters
import urllib3.exceptions

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
from fleetcompat.oci_reference import ImageReference, parse_reference

log = logging.getLogger(__name__)

ACCEPT_MANIFESTS = ", ".join(sorted(MANIFEST_TYPES | INDEX_TYPES))
CHUNK = 1024 * 1024
MAX_REFERRER_PAGES = 100
"""Most pages of a paginated referrers answer followed (`Link: <…>; rel="next"`)."""
DEFAULT_TIMEOUT = 30.0
"""Seconds to wait for a connection, and then for each answer, by default."""
REFUSED_RETRY_PAUSE = 0.5
"""Seconds before the one retry of a refused connection."""
MIN_BLOB_RATE = 64 * 1024
"""Bytes per second a streamed image blob may arrive at, slowest, before it fails."""


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
    timeout: float = DEFAULT_TIMEOUT,
) -> MirrorResult:
    """Copy each reference's image manifests and NFD artifacts into a layout.

    Every reference is checked first (`parse_reference`): InputError for one that
    is not a reference, before anything is written. `timeout` bounds the wait for
    a connection, and for each answer to arrive whole. Raises LayoutError when the
    layout cannot be created or is not one; a reference that cannot be copied is
    reported in the result instead.
    """
    parsed = [parse_reference(reference) for reference in references]
    layout = Path(layout)
    _ensure_layout(layout)
    registry = oras.provider.Registry(insecure=plain_http)
    adapter = _TimeoutAdapter(timeout)
    registry.session.mount("http://", adapter)
    registry.session.mount("https://", adapter)

    results = []
    for reference in parsed:
        copier = _Copier(registry, reference, layout, with_images, timeout)
        try:
            results.append(copier.copy())
        except (MirrorError, InputError, ValueError) as exc:
            log.warning("mirror %s failed: %s", reference.text, exc)
            results.append(MirroredImage(reference.text, None, (), str(exc)))
    return MirrorResult(layout, tuple(results))


class _TimeoutAdapter(requests.adapters.HTTPAdapter):
    """An HTTP adapter giving every request a timeout and no urllib3 retries."""

    def __init__(self, timeout: float) -> None:
        super().__init__(max_retries=0)
        self.timeout = timeout

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        """Send with the default timeout unless the caller gave one."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, *args, **kwargs)


class _Copier:
    """Copies one reference: its manifests, referrers and blobs, verified."""

    def __init__(
        self,
        registry: oras.provider.Registry,
        reference: ImageReference,
        layout: Path,
        with_images: bool,
        timeout: float,
    ) -> None:
        self.registry = registry
        self.parsed = reference
        self.reference = reference.text
        self.layout = layout
        self.with_images = with_images
        self.timeout = timeout
        self.base = (
            f"{registry.prefix}://{reference.api_host}/v2/{reference.repository}"
        )
        self.entries: list[Descriptor] = []

    def copy(self) -> MirroredImage:
        """Copy the image and its artifacts; add everything to index.json."""
        by_digest = self.parsed.digest
        target = by_digest or self.parsed.tag or "latest"
        root, data = self._manifest(target, by_digest)
        log.info("%s: resolved to %s", self.reference, root.digest)

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
            listed_referrers = self._referrers(subject)
            log.info(
                "%s: %d compatibility referrers of %s",
                self.reference,
                len(listed_referrers),
                subject.digest,
            )
            for listed in listed_referrers:
                copied = self._copy_artifact(listed, subject)
                if copied is not None:
                    artifacts.append(copied)

        name = None if by_digest else self.parsed.tagged_name
        self.entries.insert(0, _with_ref_name(root, name))
        add_entries(self.layout, self.entries)
        log.info(
            "%s: copied %d manifests and %d artifacts",
            self.reference,
            len(subjects),
            len(artifacts),
        )
        return MirroredImage(self.reference, root.digest, tuple(artifacts), None)

    def _manifest(self, target: str, expected: str | None) -> tuple[Descriptor, bytes]:
        """Fetch and store a manifest; return its descriptor and bytes."""
        url = f"{self.base}/manifests/{target}"
        response = self._get(url, {"Accept": ACCEPT_MANIFESTS})
        if response.status_code == 404:
            raise MirrorError(f"{self.reference}: {target} not found in the registry")
        data = _read_response(response, MAX_MANIFEST_BYTES, url, self.timeout)

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
        index = parse_json(
            _read_response(response, MAX_MANIFEST_BYTES, url, self.timeout), url
        )
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
        data = _read_response(response, MAX_SPEC_BYTES, url, self.timeout)
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
                allowed = self.timeout + blob.size / MIN_BLOB_RATE
                for chunk in _chunks(response, url, allowed):
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
        """GET through oras-py's session (auth), streamed; network errors translated.

        oras-py's `do_request` is called without its retry wrapper; a refused
        connection is tried once more after a short pause.
        """
        request = oras.provider.Registry.do_request.__wrapped__
        for attempt in (1, 2):
            try:
                response: requests.Response = request(
                    self.registry, url, "GET", headers=dict(headers), stream=True
                )
                return response
            except requests.RequestException as exc:
                message = network_problem(exc, self.parsed.api_host, self.timeout)
                if attempt == 1 and message.endswith("connection refused"):
                    log.debug("%s; trying once more", message)
                    time.sleep(REFUSED_RETRY_PAUSE)
                    continue
                raise MirrorError(message) from None
            except ValueError:
                raise MirrorError(
                    f"{self.parsed.api_host}: asks for authentication, and no usable "
                    "credentials were found (docker login writes them)"
                ) from None
        raise AssertionError("unreachable")


def network_problem(
    exc: requests.RequestException, host: str, timeout: float | None
) -> str:
    """A one-line message for a failed request, naming the host it went to.

    That is the registry, or the token server the registry sent the client to.
    """
    request = exc.request
    if request is not None and request.url:
        host = urlsplit(str(request.url)).netloc or host
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return f"{host}: TLS failed; --plain-http for a registry that speaks HTTP"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"{host}: no connection within {timeout:g} s"
    if isinstance(exc, requests.exceptions.ReadTimeout) or "Read timed out" in text:
        within = f" within {timeout:g} s" if timeout is not None else ""
        return f"{host}: connected, but no answer{within}"
    if "NameResolutionError" in text or "Name or service not known" in text:
        return f"{host}: name does not resolve"
    if "Connection refused" in text:
        return f"{host}: connection refused"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"{host}: connection failed ({_root_cause(exc)})"
    return f"{host}: request failed ({_root_cause(exc)})"


def _root_cause(exc: BaseException) -> str:
    """The innermost reason of a chained requests/urllib3 error, on one line."""
    reason: BaseException = exc
    while True:
        inner = getattr(reason, "reason", None) or reason.__context__
        if not isinstance(inner, BaseException) or inner is reason:
            break
        reason = inner
    text = str(reason).splitlines()[0] if str(reason) else type(reason).__name__
    return text.split(": ", 1)[-1] if text.startswith("<") else text


def _read_response(
    response: requests.Response, limit: int, url: str, timeout: float
) -> bytes:
    """Read a response body of at most `limit` bytes, whole within `timeout` s."""
    if response.status_code != 200:
        raise MirrorError(f"{url}: HTTP {response.status_code}")
    data = bytearray()
    for chunk in _chunks(response, url, timeout):
        data.extend(chunk)
        if len(data) > limit:
            response.close()
            raise MirrorError(f"{url}: more than the {limit} bytes accepted")
    return bytes(data)


def _chunks(response: requests.Response, url: str, allowed: float) -> Iterator[bytes]:
    """A response body as it arrives, until `allowed` s after the request was sent.

    Past that deadline, or on a network failure mid-body, raises MirrorError.
    Bytes are taken as they arrive (urllib3's `read1`), not a whole chunk at a
    time, so that the deadline is checked after every read; each read waits at
    most until the deadline.
    """
    deadline = time.monotonic() - response.elapsed.total_seconds() + allowed
    late = f"{url}: answer not complete within {allowed:g} s"
    raw = response.raw
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                response.close()
                raise MirrorError(late)
            _limit_wait(raw, remaining)
            chunk = raw.read1(CHUNK, decode_content=True)
            if not chunk:
                return
            yield chunk
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        response.close()
        if time.monotonic() >= deadline:
            raise MirrorError(late) from None
        host = url.split("/")[2] if url.count("/") >= 2 else url
        problem = network_problem(_as_requests_error(exc), host, None)
        raise MirrorError(f"{problem} (while reading {url})") from None


def _limit_wait(raw: Any, remaining: float) -> None:
    """Make the next read on an answer's socket wait at most `remaining` s."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if isinstance(sock, socket.socket):
        current = sock.gettimeout()
        if current is None or remaining < current:
            sock.settimeout(remaining)


def _as_requests_error(exc: Exception) -> requests.RequestException:
    """A urllib3 or socket error mid-body as the requests error iter_content raises."""
    if isinstance(exc, requests.RequestException):
        return exc
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return requests.exceptions.ReadTimeout(exc)
    return requests.exceptions.ConnectionError(exc)


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
