"""`attach`: a spec added to a layout exactly as `oras attach --oci-layout` does."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleetcompat.attach import attach
from fleetcompat.errors import LayoutError, SpecError
from fleetcompat.oci import scan_layouts
from fleetcompat.oci_blobs import blob_path
from tests.helpers.oci_layouts import REF_NAME, LayoutBuilder, spec_text

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def layout(tmp_path: Path) -> LayoutBuilder:
    """A layout with a two-platform image `app:1.0` and no artifacts."""
    builder = LayoutBuilder(tmp_path / "layout")
    index, _ = builder.multi()
    builder.tag(index, "app:1.0")
    return builder


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    """A valid spec file."""
    path = tmp_path / "gpu.yaml"
    path.write_text(spec_text("gpu"))
    return path


def test_attached_manifest_has_the_shape_oras_writes(
    layout: LayoutBuilder, spec: Path
) -> None:
    descriptor = attach(layout.root, "app:1.0", spec, created=WHEN)

    data = blob_path(layout.root, descriptor.digest).read_bytes()
    manifest = json.loads(data)
    assert list(manifest) == [
        "schemaVersion",
        "mediaType",
        "artifactType",
        "config",
        "layers",
        "subject",
        "annotations",
    ]
    assert (
        manifest["artifactType"] == "application/vnd.nfd.image-compatibility.v1alpha1"
    )
    assert manifest["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": "sha256:44136fa355b3678a1146ad16f7e864"
        "9e94fb4fc21fe77e8310c060f61caaff8a",
        "size": 2,
        "data": "e30=",
    }
    layer = manifest["layers"][0]
    assert layer["mediaType"] == (
        "application/vnd.nfd.image-compatibility.spec.v1alpha1+yaml"
    )
    assert layer["annotations"] == {"org.opencontainers.image.title": "gpu.yaml"}
    assert manifest["annotations"] == {
        "org.opencontainers.image.created": "2026-01-02T03:04:05Z"
    }
    assert b" " not in data
    assert blob_path(layout.root, manifest["config"]["digest"]).read_bytes() == b"{}"


def test_attached_artifact_gets_an_untagged_index_entry_with_type_and_annotations(
    layout: LayoutBuilder, spec: Path
) -> None:
    descriptor = attach(layout.root, "app:1.0", spec, created=WHEN)

    entries = json.loads((layout.root / "index.json").read_text())["manifests"]
    entry = entries[-1]
    assert entry == {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": descriptor.digest,
        "size": descriptor.size,
        "annotations": {"org.opencontainers.image.created": "2026-01-02T03:04:05Z"},
        "artifactType": "application/vnd.nfd.image-compatibility.v1alpha1",
    }
    assert REF_NAME not in entry["annotations"]
    assert not list(layout.root.glob(".*.tmp"))


def test_attached_spec_is_what_the_reader_chooses(
    layout: LayoutBuilder, spec: Path
) -> None:
    descriptor = attach(layout.root, "app:1.0", spec, created=WHEN)

    image = scan_layouts([layout.root]).images[0]
    assert {c.artifact.digest for c in image.choices if c.artifact} == {
        descriptor.digest
    }
    assert image.choices[0].artifact is not None
    assert image.choices[0].artifact.spec_bytes == spec.read_bytes()


def test_newer_attach_replaces_the_older_choice(
    layout: LayoutBuilder, spec: Path, tmp_path: Path
) -> None:
    newer_spec = tmp_path / "newer.yaml"
    newer_spec.write_text(spec_text("newer"))
    attach(layout.root, "app:1.0", spec, created=WHEN)

    newer = attach(layout.root, "app:1.0", newer_spec, created=WHEN.replace(year=2027))

    image = scan_layouts([layout.root]).images[0]
    assert image.choices[0].artifact is not None
    assert image.choices[0].artifact.digest == newer.digest
    assert image.choices[0].candidates == 2


def test_platform_attach_makes_the_platform_manifest_the_subject(
    layout: LayoutBuilder, spec: Path
) -> None:
    descriptor = attach(
        layout.root, "app:1.0", spec, created=WHEN, platform="linux/arm64"
    )

    image = scan_layouts([layout.root]).images[0]
    by_platform = {c.platform.name: c for c in image.choices if c.platform}
    assert by_platform["linux/arm64"].source == "platform"
    assert by_platform["linux/arm64"].artifact is not None
    assert by_platform["linux/arm64"].artifact.digest == descriptor.digest
    assert by_platform["linux/amd64"].artifact is None


def test_attach_twice_with_the_same_content_adds_one_entry(
    layout: LayoutBuilder, spec: Path
) -> None:
    attach(layout.root, "app:1.0", spec, created=WHEN)
    attach(layout.root, "app:1.0", spec, created=WHEN)

    entries = json.loads((layout.root / "index.json").read_text())["manifests"]
    assert len(entries) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("compatibilities: [", "line", id="malformed-yaml"),
        pytest.param("version: v1alpha1\n", "compatibilities", id="no-sets"),
        pytest.param(
            "apiVersion: nfd.k8s-sigs.io/v1alpha1\nkind: NodeFeatureRule\n",
            "compatibilities",
            id="node-feature-rule",
        ),
    ],
)
def test_invalid_spec_is_refused_before_anything_is_written(
    layout: LayoutBuilder, tmp_path: Path, content: str, message: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    before = (layout.root / "index.json").read_bytes()
    blobs = sorted((layout.root / "blobs" / "sha256").iterdir())

    with pytest.raises(SpecError, match=message):
        attach(layout.root, "app:1.0", bad)

    assert (layout.root / "index.json").read_bytes() == before
    assert sorted((layout.root / "blobs" / "sha256").iterdir()) == blobs


@pytest.mark.parametrize(
    ("image", "platform", "message"),
    [
        pytest.param("other:1.0", None, "no such image", id="unknown-image"),
        pytest.param("app:1.0", "linux/s390x", "no platform", id="unknown-platform"),
    ],
)
def test_attach_to_something_absent_is_refused(
    layout: LayoutBuilder, spec: Path, image: str, platform: str | None, message: str
) -> None:
    with pytest.raises(LayoutError, match=message):
        attach(layout.root, image, spec, platform=platform)


def _existing_on_index(layout: LayoutBuilder, created: str) -> str:
    """Give `app:1.0`'s index an artifact created at `created`; return its digest."""
    index = next(e for e in layout.entries if e.get("annotations"))
    artifact = layout.tag(layout.artifact(index, spec_text("old"), created))
    return str(artifact["digest"])


def _existing_on_platform(layout: LayoutBuilder, arch: str, created: str) -> str:
    """Give one platform manifest of `app:1.0` an artifact; return its digest."""
    index = json.loads(layout.path(next(iter(layout.entries))).read_text())
    child = next(m for m in index["manifests"] if m["platform"]["architecture"] == arch)
    artifact = layout.tag(layout.artifact(child, spec_text(arch), created))
    return str(artifact["digest"])


@pytest.mark.parametrize(
    ("prepare", "platform", "expected"),
    [
        pytest.param(
            lambda lay: _existing_on_index(lay, "2027-01-01T00:00:00Z"),
            None,
            [
                "linux/amd64 will still use artifact {winner} (newer: created "
                "2027-01-01T00:00:00Z, this one 2026-01-02T03:04:05Z)",
                "linux/arm64 will still use artifact {winner} (newer: created "
                "2027-01-01T00:00:00Z, this one 2026-01-02T03:04:05Z)",
            ],
            id="older-than-an-index-artifact",
        ),
        pytest.param(
            lambda lay: _existing_on_platform(lay, "amd64", "2020-01-01T00:00:00Z"),
            None,
            [
                "linux/amd64 will still use artifact {winner} (the platform "
                "manifest's own artifact wins over the image's)"
            ],
            id="platform-artifact-wins-over-a-newer-index-one",
        ),
        pytest.param(
            lambda lay: _existing_on_platform(lay, "arm64", "2027-01-01T00:00:00Z"),
            "linux/arm64",
            [
                "linux/arm64 will still use artifact {winner} (newer: created "
                "2027-01-01T00:00:00Z, this one 2026-01-02T03:04:05Z)"
            ],
            id="older-than-the-platform-artifact",
        ),
        pytest.param(
            lambda lay: _existing_on_index(lay, "2020-01-01T00:00:00Z"),
            None,
            [],
            id="newer-than-the-existing-one-is-chosen",
        ),
        pytest.param(
            lambda lay: _existing_on_platform(lay, "amd64", "2027-01-01T00:00:00Z"),
            "linux/arm64",
            [],
            id="another-platform-artifact-is-not-in-the-way",
        ),
    ],
)
def test_attaching_an_artifact_that_will_not_be_chosen_warns_per_platform(
    layout: LayoutBuilder,
    spec: Path,
    caplog: pytest.LogCaptureFixture,
    prepare: Callable[[LayoutBuilder], str],
    platform: str | None,
    expected: list[str],
) -> None:
    winner = prepare(layout)

    with caplog.at_level(logging.WARNING, logger="fleetcompat"):
        attached = attach(layout.root, "app:1.0", spec, created=WHEN, platform=platform)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"app:1.0: {line.format(winner=winner)}" for line in expected]
    entries = json.loads((layout.root / "index.json").read_text())["manifests"]
    assert attached.digest in {entry["digest"] for entry in entries}
