"""Registries for the mirror tests: Debian's docker-registry, and a small one of ours.

`Content` builds images and NFD artifacts as bytes. `push` sends them to a real
registry over plain HTTP the way oras-go does for a registry without the referrers
API: manifests by digest, and each artifact appended to the `sha256-<hex>`
tag-schema index of its subject. `ReferrersRegistry` is an in-process registry
(http.server in a thread) that serves the same content with the referrers API,
and can be told to serve tampered bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.helpers.oci_layouts import (
    CONFIG,
    CREATED,
    EMPTY,
    INDEX,
    LAYER,
    MANIFEST,
    NFD,
    NFD_SPEC,
)

Descriptor = dict[str, Any]


def digest_of(data: bytes) -> str:
    """sha256 digest of bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Content:
    """Blobs and manifests of one repository, built in memory."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def blob(self, data: bytes, media_type: str) -> Descriptor:
        """Add a blob; return its descriptor."""
        digest = digest_of(data)
        self.blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def manifest(self, document: dict[str, Any]) -> Descriptor:
        """Add a manifest or index; return its descriptor."""
        data = json.dumps(document, separators=(",", ":")).encode()
        digest = digest_of(data)
        self.manifests[digest] = (data, document["mediaType"])
        self.order.append(digest)
        return {"mediaType": document["mediaType"], "digest": digest, "size": len(data)}

    def image(self, arch: str, marker: str = "") -> Descriptor:
        """A tiny image for linux/<arch>; `marker` makes it differ."""
        config = self.blob(
            json.dumps({"architecture": arch, "os": "linux", "x": marker}).encode(),
            CONFIG,
        )
        layer = self.blob(f"layer for {arch}".encode(), LAYER)
        descriptor = self.manifest(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": config,
                "layers": [layer],
            }
        )
        return {**descriptor, "platform": {"architecture": arch, "os": "linux"}}

    def multi(self, tag: str) -> tuple[Descriptor, dict[str, Descriptor]]:
        """A two-platform index tagged `tag`; returns it and its children."""
        children = {arch: self.image(arch, tag) for arch in ("amd64", "arm64")}
        index = self.manifest(
            {
                "schemaVersion": 2,
                "mediaType": INDEX,
                "manifests": list(children.values()),
            }
        )
        self.tags[tag] = index["digest"]
        return index, children

    def artifact(
        self,
        subject: Descriptor,
        spec: str,
        created: str,
        artifact_type: str = NFD,
    ) -> Descriptor:
        """An artifact (NFD by default) referring to `subject`."""
        layer = self.blob(spec.encode(), NFD_SPEC)
        config = {**self.blob(b"{}", EMPTY), "data": "e30="}
        document = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": artifact_type,
            "config": config,
            "layers": [layer],
            "subject": {k: subject[k] for k in ("mediaType", "digest", "size")},
            "annotations": {CREATED: created},
        }
        descriptor = self.manifest(document)
        return {
            **descriptor,
            "artifactType": artifact_type,
            "annotations": {CREATED: created},
        }

    def referrers(self, subject: str) -> list[Descriptor]:
        """Descriptors of the manifests whose subject is `subject`."""
        found = []
        for digest in self.order:
            data, media_type = self.manifests[digest]
            document = json.loads(data)
            if (document.get("subject") or {}).get("digest") != subject:
                continue
            found.append(
                {
                    "mediaType": media_type,
                    "digest": digest,
                    "size": len(data),
                    "artifactType": document.get("artifactType"),
                    "annotations": document.get("annotations", {}),
                }
            )
        return found


def _request(
    url: str,
    method: str,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; returns status, headers and body (errors included)."""
    request = urllib.request.Request(
        url, data=data, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def push(base: str, repo: str, content: Content) -> None:
    """Push content to a registry without referrers API, as oras-go would."""
    for digest, data in content.blobs.items():
        status, headers, _ = _request(f"{base}/v2/{repo}/blobs/uploads/", "POST")
        assert status == 202, status
        location = headers["Location"]
        location = location if location.startswith("http") else base + location
        joiner = "&" if "?" in location else "?"
        status, _, body = _request(
            f"{location}{joiner}digest={digest}",
            "PUT",
            data,
            {"Content-Type": "application/octet-stream"},
        )
        assert status == 201, (status, body)

    subjects = []
    for digest in content.order:
        data, media_type = content.manifests[digest]
        _put_manifest(base, repo, digest, data, media_type)
        subject = (json.loads(data).get("subject") or {}).get("digest")
        if subject and subject not in subjects:
            subjects.append(subject)
    for subject in subjects:
        _add_to_tag_schema(base, repo, subject, content.referrers(subject))
    for tag, digest in content.tags.items():
        data, media_type = content.manifests[digest]
        _put_manifest(base, repo, tag, data, media_type)


def _put_manifest(base: str, repo: str, ref: str, data: bytes, media_type: str) -> None:
    """PUT one manifest."""
    status, _, body = _request(
        f"{base}/v2/{repo}/manifests/{ref}", "PUT", data, {"Content-Type": media_type}
    )
    assert status == 201, (status, body)


def _add_to_tag_schema(
    base: str, repo: str, subject: str, referrers: list[Descriptor]
) -> None:
    """Write the `sha256-<hex>` index listing the subject's referrers."""
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": INDEX, "manifests": referrers},
        separators=(",", ":"),
    ).encode()
    _put_manifest(base, repo, subject.replace(":", "-"), index, INDEX)


class ReferrersRegistry:
    """A tiny read-only registry with the referrers API, serving one Content."""

    def __init__(self, repo: str, content: Content) -> None:
        self.repo = repo
        self.content = content
        self.requests: list[str] = []
        self.tampered: set[str] = set()
        self.page_size: int | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        """host:port of the registry."""
        return f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ReferrersRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                registry.requests.append(self.path)
                status, headers, body = registry.answer(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for a GET."""
        parts = urlsplit(path)
        if parts.path == "/v2/":
            return 200, {}, b"{}"
        match = re.fullmatch(
            rf"/v2/{re.escape(self.repo)}/(manifests|blobs|referrers)/([^/]+)",
            parts.path,
        )
        if match is None:
            return 404, {}, b'{"errors":[{"code":"NAME_UNKNOWN"}]}'
        kind, ref = match.groups()

        if kind == "referrers":
            query = parse_qs(parts.query)
            wanted = query.get("artifactType")
            listed = [
                d
                for d in self.content.referrers(ref)
                if not wanted or d["artifactType"] in wanted
            ]
            headers = {"Content-Type": INDEX}
            if wanted:
                headers["OCI-Filters-Applied"] = "artifactType"
            start = int(query.get("page", ["0"])[0])
            if self.page_size is not None:
                end = start + self.page_size
                if end < len(listed):
                    headers["Link"] = f'<{parts.path}?page={end}>; rel="next"'
                listed = listed[start:end]
            body = json.dumps(
                {"schemaVersion": 2, "mediaType": INDEX, "manifests": listed}
            ).encode()
            return 200, headers, body
        if kind == "blobs":
            data = self.content.blobs.get(ref)
            return (200, {}, data) if data is not None else (404, {}, b"")

        digest = self.content.tags.get(ref, ref)
        if digest not in self.content.manifests:
            return 404, {}, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'
        data, media_type = self.content.manifests[digest]
        if digest in self.tampered:
            data = data.replace(b'"schemaVersion":2', b'"schemaVersion":3')
        return 200, {"Content-Type": media_type, "Docker-Content-Digest": digest}, data
