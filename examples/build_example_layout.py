"""Build examples/oci-layout/: the example images with their compatibility specs.

Run from anywhere: `python examples/build_example_layout.py`. The layout is rebuilt
from scratch and comes out byte for byte the same every time (fixed timestamps,
fixed tar headers), so it is committed beside this script. Each image is a real,
tiny OCI image (a config and one layer), tagged as `name:tag`; multi-platform
images are indexes for linux/amd64 and linux/arm64 whose platform manifests are
untagged entries, as `oras cp` leaves them. The specs in examples/specs/ are
attached with `fleetcompat.attach`, exactly as `oras attach` would attach them.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from datetime import UTC, datetime
from pathlib import Path

from fleetcompat.attach import add_index_entry, attach
from fleetcompat.oci_blobs import (
    INDEX,
    MANIFEST,
    Descriptor,
    canonical_json,
    write_blob,
)

HERE = Path(__file__).resolve().parent
LAYOUT = HERE / "oci-layout"
SPECS = HERE / "specs"

IMAGES = {
    "cuda-inference:12.4": ("amd64", "arm64"),
    "dpdk-forwarder:23.11": ("amd64",),
    "onnx-avx512:1.17": ("amd64",),
    "base-runtime:2.0": ("amd64", "arm64"),
    "python-service:3.12": ("amd64", "arm64"),
}
"""Each image and its platforms; one platform means a single-manifest image."""

ATTACHMENTS = [
    ("cuda-inference:12.4", "cuda-inference.yaml", None, "2026-01-10T09:00:00Z"),
    ("dpdk-forwarder:23.11", "dpdk-forwarder.yaml", None, "2026-01-11T09:00:00Z"),
    ("onnx-avx512:1.17", "onnx-avx512.yaml", None, "2026-01-12T09:00:00Z"),
    ("base-runtime:2.0", "base-runtime-superseded.yaml", None, "2025-06-01T12:00:00Z"),
    ("base-runtime:2.0", "base-runtime.yaml", None, "2026-01-15T12:00:00Z"),
    (
        "python-service:3.12",
        "python-service-amd64.yaml",
        "linux/amd64",
        "2026-01-20T08:30:00Z",
    ),
    (
        "python-service:3.12",
        "python-service-arm64.yaml",
        "linux/arm64",
        "2026-01-20T08:30:00Z",
    ),
]
"""(image, spec file, platform or None for the whole image, created)."""


def main() -> None:
    """Rebuild the layout from scratch."""
    shutil.rmtree(LAYOUT, ignore_errors=True)
    (LAYOUT / "blobs" / "sha256").mkdir(parents=True)
    (LAYOUT / "oci-layout").write_bytes(b'{"imageLayoutVersion":"1.0.0"}')
    empty = {"schemaVersion": 2, "mediaType": INDEX, "manifests": []}
    (LAYOUT / "index.json").write_bytes(canonical_json(empty))

    for reference, platforms in IMAGES.items():
        add_image(reference, platforms)
    for reference, spec, platform, created in ATTACHMENTS:
        moment = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        attach(LAYOUT, reference, SPECS / spec, created=moment, platform=platform)
    print(f"wrote {LAYOUT}")


def add_image(reference: str, architectures: tuple[str, ...]) -> None:
    """Write one image (an index when it has several platforms) and tag it."""
    manifests = [image_manifest(reference, arch) for arch in architectures]
    if len(manifests) == 1:
        tagged = manifests[0]
    else:
        children = [
            Descriptor(
                m.media_type,
                m.digest,
                m.size,
                platform={"architecture": a, "os": "linux"},
            )
            for m, a in zip(manifests, architectures, strict=True)
        ]
        index = {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [child.to_json() for child in children],
        }
        data = canonical_json(index)
        tagged = Descriptor(INDEX, write_blob(LAYOUT, data), len(data))

    name = {"org.opencontainers.image.ref.name": reference}
    add_index_entry(
        LAYOUT, Descriptor(tagged.media_type, tagged.digest, tagged.size, name)
    )
    if len(manifests) > 1:
        for child in children:
            add_index_entry(LAYOUT, child)


def image_manifest(reference: str, arch: str) -> Descriptor:
    """A tiny image for one platform: a config and one uncompressed tar layer."""
    layer = tar_layer(reference, arch)
    layer_digest = write_blob(LAYOUT, layer)
    config = {
        "created": "2026-01-01T00:00:00Z",
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh", "-c", f"cat /etc/{reference.split(':')[0]}"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    config_data = canonical_json(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": write_blob(LAYOUT, config_data),
            "size": len(config_data),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": len(layer),
            }
        ],
    }
    data = canonical_json(manifest)
    return Descriptor(MANIFEST, write_blob(LAYOUT, data), len(data))


def tar_layer(reference: str, arch: str) -> bytes:
    """A one-file tar with fixed headers, so its digest never changes."""
    name, _, tag = reference.partition(":")
    content = f"{name} {tag} for linux/{arch}: an example image of fleetcompat\n"
    info = tarfile.TarInfo(f"etc/{name}")
    info.size = len(content)
    info.mtime = 1767225600
    info.mode = 0o644
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(content.encode()))
    return buffer.getvalue()


if __name__ == "__main__":
    main()
