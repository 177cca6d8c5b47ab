"""Build OCI image layouts in the shapes real tools write, for tests.

`LayoutBuilder` writes blobs and `index.json` by hand, so a test can make exactly
the shape it means: what oras-go writes (untagged referrer entries), what
regclient and zot write (`sha256-<hex>` tag-schema indexes), skopeo's (no
referrers), and hostile variants (bad digests, wrong sizes, truncated JSON).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
LEGACY = "application/vnd.oci.artifact.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
EMPTY = "application/vnd.oci.empty.v1+json"
NFD = "application/vnd.nfd.image-compatibility.v1alpha1"
NFD_SPEC = "application/vnd.nfd.image-compatibility.spec.v1alpha1+yaml"
CREATED = "org.opencontainers.image.created"
REF_NAME = "org.opencontainers.image.ref.name"

Descriptor = dict[str, Any]


def spec_text(*tags: str) -> str:
    """A small valid NFD spec with one compatibility set per tag."""
    sets = "".join(
        f"""  - tag: {tag}
    description: needs the {tag} flag
    rules:
      - name: {tag}
        matchFeatures:
          - feature: cpu.cpuid
            matchExpressions:
              {tag.upper()}: {{op: Exists}}
"""
        for tag in tags or ("sse4",)
    )
    return f"version: v1alpha1\ncompatibilities:\n{sets}"


class LayoutBuilder:
    """Writes one OCI layout: blobs, manifests, and index.json entries."""

    def __init__(self, root: Path, version: str = "1.0.0") -> None:
        self.root = root
        self.entries: list[Descriptor] = []
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": version}))
        self.save()

    def blob(self, data: bytes, media_type: str) -> Descriptor:
        """Store bytes; return their descriptor."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest[7:]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def document(self, document: dict[str, Any], media_type: str) -> Descriptor:
        """Store a JSON document as a blob."""
        data = json.dumps(document, separators=(",", ":")).encode()
        return self.blob(data, media_type)

    def image(self, arch: str = "amd64", marker: str = "") -> Descriptor:
        """A tiny real image manifest: a config and one layer blob."""
        config = self.document(
            {
                "architecture": arch,
                "os": "linux",
                "rootfs": {"type": "layers"},
                "config": {"Env": [f"MARKER={marker}"]},
            },
            CONFIG,
        )
        layer = self.blob(f"layer {arch} {marker}".encode(), LAYER)
        return self.document(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": config,
                "layers": [layer],
            },
            MANIFEST,
        )

    def multi(
        self, archs: tuple[str, ...] = ("amd64", "arm64"), marker: str = ""
    ) -> tuple[Descriptor, dict[str, Descriptor]]:
        """A multi-platform index; returns it and its children by arch."""
        children = {}
        for arch in archs:
            child = self.image(arch, marker)
            child["platform"] = {"architecture": arch, "os": "linux"}
            children[arch] = child
        index = self.index(list(children.values()))
        return index, children

    def index(self, manifests: list[Descriptor], **fields: Any) -> Descriptor:
        """An image index listing the given descriptors."""
        document = {"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}
        document.update(fields)
        return self.document(document, INDEX)

    def artifact(
        self,
        subject: Descriptor,
        spec: str | bytes | None = None,
        created: str | None = "2025-01-01T00:00:00Z",
        *,
        artifact_type: str | None = NFD,
        config_type: str = EMPTY,
        legacy: bool = False,
    ) -> Descriptor:
        """An NFD compatibility artifact referring to `subject`."""
        data = spec if isinstance(spec, bytes) else (spec or spec_text()).encode()
        layer = self.blob(data, NFD_SPEC)
        layer["annotations"] = {"org.opencontainers.image.title": "spec.yaml"}
        config = self.blob(b"{}", config_type)
        subject = {k: subject[k] for k in ("mediaType", "digest", "size")}
        annotations = {CREATED: created} if created is not None else {}

        if legacy:
            document: dict[str, Any] = {
                "mediaType": LEGACY,
                "artifactType": artifact_type,
                "blobs": [layer],
                "subject": subject,
                "annotations": annotations,
            }
            descriptor = self.document(document, LEGACY)
        else:
            document = {"schemaVersion": 2, "mediaType": MANIFEST}
            if artifact_type:
                document["artifactType"] = artifact_type
            document.update(
                {
                    "config": config,
                    "layers": [layer],
                    "subject": subject,
                    "annotations": annotations,
                }
            )
            descriptor = self.document(document, MANIFEST)
        if annotations:
            descriptor["annotations"] = dict(annotations)
        if artifact_type:
            descriptor["artifactType"] = artifact_type
        return descriptor

    def tag(self, descriptor: Descriptor, name: str | None = None) -> Descriptor:
        """Add an index.json entry for a descriptor, tagged when a name is given."""
        entry = dict(descriptor)
        entry.pop("platform", None) if name else None
        if name is not None:
            entry["annotations"] = {**entry.get("annotations", {}), REF_NAME: name}
        self.entries.append(entry)
        self.save()
        return entry

    def tag_schema(
        self, subject: Descriptor, referrers: list[Descriptor]
    ) -> Descriptor:
        """A `sha256-<hex>` tag-schema index listing referrers of `subject`."""
        index = self.index(referrers)
        algorithm, encoded = subject["digest"].split(":")
        return self.tag(index, f"{algorithm}-{encoded}")

    def raw_entry(self, entry: Any) -> None:
        """Add an index.json entry exactly as given (for hostile layouts)."""
        self.entries.append(entry)
        self.save()

    def save(self) -> None:
        """Write index.json."""
        index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": self.entries}
        (self.root / "index.json").write_text(json.dumps(index, indent=1))

    def path(self, descriptor: Descriptor) -> Path:
        """Where a descriptor's blob lives."""
        return self.root / "blobs" / "sha256" / descriptor["digest"][7:]
