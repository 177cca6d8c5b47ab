"""Broken and hostile layouts: each refused clearly, the good images still listed."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetcompat.errors import LayoutError
from fleetcompat.oci import Catalog, Image, scan_layouts
from fleetcompat.oci_blobs import check_digest
from tests.helpers.oci_layouts import (
    INDEX,
    MANIFEST,
    NFD_SPEC,
    Descriptor,
    LayoutBuilder,
    spec_text,
)

Spoiler = Callable[[LayoutBuilder], None]


def good_and_spoiled(tmp_path: Path, spoil: Spoiler) -> Catalog:
    """A layout with one good image with an artifact, then spoiled."""
    layout = LayoutBuilder(tmp_path)
    good = layout.tag(layout.image(marker="good"), "good:1.0")
    layout.tag(layout.artifact(good, spec_text("good")))
    spoil(layout)
    return scan_layouts([tmp_path])


def assert_good_listed(catalog: Catalog) -> None:
    """The good image is there, with its artifact and no problems."""
    good = [i for i in catalog.images if "good:1.0" in i.references]
    assert len(good) == 1
    assert good[0].problems == ()
    assert good[0].choices[0].artifact is not None
    assert good[0].choices[0].artifact.tags == ("good",)


def problems_of(catalog: Catalog) -> str:
    """Every problem, of the layouts and the images, as one text."""
    texts = list(catalog.problems)
    texts += [p for image in catalog.images for p in image.problems]
    return "\n".join(texts)


def bad_image(catalog: Catalog) -> Image:
    """The image tagged bad:1.0."""
    return next(i for i in catalog.images if "bad:1.0" in i.references)


def fake(
    layout: LayoutBuilder, data: bytes, digest: str, media_type: str
) -> Descriptor:
    """Store bytes under a digest they do not hash to."""
    (layout.root / "blobs" / "sha256" / digest[7:]).write_bytes(data)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def bad_digest_entry(value: str) -> Spoiler:
    """An index.json entry whose digest is `value`."""

    def spoil(layout: LayoutBuilder) -> None:
        layout.raw_entry({"mediaType": MANIFEST, "digest": value, "size": 10})

    return spoil


@pytest.mark.parametrize(
    "digest",
    [
        pytest.param("sha256:../../../../etc/passwd", id="dot-dot"),
        pytest.param("sha256:/etc/passwd", id="absolute"),
        pytest.param("sha256/../../x", id="no-colon"),
        pytest.param("md5:d41d8cd98f00b204e9800998ecf8427e", id="unknown-algorithm"),
        pytest.param("sha256:" + "A" * 64, id="upper-case-hex"),
        pytest.param("sha256:" + "a" * 63, id="short-hex"),
        pytest.param("sha512:" + "a" * 64, id="sha512-too-short"),
        pytest.param("sha256:" + "a" * 64 + "\n", id="trailing-newline"),
    ],
)
def test_bad_digest_in_index_json_is_refused_and_others_listed(
    tmp_path: Path, digest: str
) -> None:
    catalog = good_and_spoiled(tmp_path, bad_digest_entry(digest))

    assert_good_listed(catalog)
    assert "invalid digest" in problems_of(catalog)
    assert "entry #3" in problems_of(catalog)


def test_digest_check_accepts_both_registered_algorithms() -> None:
    for digest in ("sha256:" + "0" * 64, "sha512:" + "f" * 128):
        assert check_digest(digest) == digest


def test_traversal_in_a_spec_layer_digest_never_reads_outside(tmp_path: Path) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text(spec_text("stolen"))

    def spoil(layout: LayoutBuilder) -> None:
        image = layout.tag(layout.image(marker="bad"), "bad:1.0")
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": "application/vnd.nfd.image-compatibility.v1alpha1",
            "config": layout.blob(b"{}", "application/vnd.oci.empty.v1+json"),
            "layers": [
                {
                    "mediaType": NFD_SPEC,
                    "digest": "sha256:../../../secret.yaml",
                    "size": secret.stat().st_size,
                }
            ],
            "subject": {k: image[k] for k in ("mediaType", "digest", "size")},
        }
        layout.tag(layout.document(manifest, MANIFEST))

    catalog = good_and_spoiled(tmp_path / "layout", spoil)

    assert_good_listed(catalog)
    assert bad_image(catalog).choices[0].artifact is None
    assert "invalid digest" in "\n".join(bad_image(catalog).problems)


def test_tampered_image_manifest_is_a_problem_of_that_image(tmp_path: Path) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        real = layout.image(marker="bad")
        data = (
            layout.path(real)
            .read_bytes()
            .replace(b'"schemaVersion":2', b'"schemaVersion":3')
        )
        layout.tag(fake(layout, data, real["digest"], MANIFEST), "bad:1.0")

    catalog = good_and_spoiled(tmp_path, spoil)

    assert_good_listed(catalog)
    assert "not the digest it is stored under" in "\n".join(bad_image(catalog).problems)


def test_tampered_spec_blob_is_refused(tmp_path: Path) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        image = layout.tag(layout.image(marker="bad"), "bad:1.0")
        layout.tag(layout.artifact(image, spec_text("honest")))
        for blob in (layout.root / "blobs" / "sha256").iterdir():
            if b"honest" in blob.read_bytes():
                blob.write_bytes(blob.read_bytes().replace(b"honest", b"forged"))

    catalog = good_and_spoiled(tmp_path, spoil)

    assert_good_listed(catalog)
    assert bad_image(catalog).choices[0].artifact is None
    assert "tampered" in "\n".join(bad_image(catalog).problems)


def test_descriptor_size_differing_from_the_file_is_refused(tmp_path: Path) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        image = layout.image(marker="bad")
        layout.tag({**image, "size": image["size"] + 1}, "bad:1.0")

    catalog = good_and_spoiled(tmp_path, spoil)

    assert_good_listed(catalog)
    assert "descriptor says" in "\n".join(bad_image(catalog).problems)


def test_oversized_manifest_is_refused_without_reading_it(tmp_path: Path) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        digest = "sha256:" + "ab" * 32
        path = layout.root / "blobs" / "sha256" / digest[7:]
        with path.open("wb") as stream:
            stream.truncate(64 * 1024 * 1024)
        layout.tag(
            {"mediaType": MANIFEST, "digest": digest, "size": 64 << 20}, "bad:1.0"
        )

    catalog = good_and_spoiled(tmp_path, spoil)

    assert_good_listed(catalog)
    assert "more than the 4194304 accepted" in "\n".join(bad_image(catalog).problems)


def test_oversized_spec_is_refused(tmp_path: Path) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        image = layout.tag(layout.image(marker="bad"), "bad:1.0")
        huge = spec_text("big").encode() + b"#" * (2 << 20) + b"\n"
        layout.tag(layout.artifact(image, huge))

    catalog = good_and_spoiled(tmp_path, spoil)

    assert_good_listed(catalog)
    assert "1048576 accepted" in "\n".join(bad_image(catalog).problems)


def test_truncated_manifest_json_is_refused(tmp_path: Path) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        data = layout.path(layout.image(marker="bad")).read_bytes()[:-20]
        layout.tag(layout.blob(data, MANIFEST), "bad:1.0")

    catalog = good_and_spoiled(tmp_path, spoil)

    assert_good_listed(catalog)
    assert "malformed JSON" in "\n".join(bad_image(catalog).problems)


def test_deeply_nested_json_is_refused(tmp_path: Path) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        data = b'{"schemaVersion":2,"layers":[],"x":' + b"[" * 5000 + b"]" * 5000
        layout.tag(layout.blob(data + b"}", MANIFEST), "bad:1.0")

    catalog = good_and_spoiled(tmp_path, spoil)

    assert_good_listed(catalog)
    assert "nested" in "\n".join(bad_image(catalog).problems)


def test_manifest_described_as_another_media_type_is_refused(tmp_path: Path) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        index, _ = layout.multi(marker="bad")
        layout.tag({**index, "mediaType": MANIFEST}, "bad:1.0")

    catalog = good_and_spoiled(tmp_path, spoil)

    assert_good_listed(catalog)
    assert "but the blob says" in "\n".join(bad_image(catalog).problems)


def test_index_without_manifests_list_is_refused(tmp_path: Path) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        bogus = layout.document({"schemaVersion": 2, "mediaType": INDEX}, INDEX)
        layout.tag(bogus, "bad:1.0")

    catalog = good_and_spoiled(tmp_path, spoil)

    assert_good_listed(catalog)
    assert "without a manifests list" in "\n".join(bad_image(catalog).problems)


def test_missing_layers_and_configs_are_fine(tmp_path: Path) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        image = layout.tag(layout.image(marker="thin"), "thin:1.0")
        document = json.loads(layout.path(image).read_bytes())
        layout.path(document["config"]).unlink()
        layout.path(document["layers"][0]).unlink()
        layout.tag(layout.artifact(image))

    catalog = good_and_spoiled(tmp_path, spoil)

    assert catalog.complete
    assert all(i.choices[0].artifact is not None for i in catalog.images)


def test_missing_image_manifest_is_a_problem_of_that_image(tmp_path: Path) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        image = layout.image(marker="bad")
        layout.path(image).unlink()
        layout.tag(image, "bad:1.0")

    catalog = good_and_spoiled(tmp_path, spoil)

    assert_good_listed(catalog)
    assert "missing from the layout" in "\n".join(bad_image(catalog).problems)


def test_missing_spec_blob_is_a_problem_naming_the_artifact(tmp_path: Path) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        image = layout.tag(layout.image(marker="bad"), "bad:1.0")
        artifact = layout.tag(layout.artifact(image, spec_text("gone")))
        document = json.loads(layout.path(artifact).read_bytes())
        layout.path(document["layers"][0]).unlink()

    catalog = good_and_spoiled(tmp_path, spoil)

    problems = "\n".join(bad_image(catalog).problems)
    assert_good_listed(catalog)
    assert "spec of artifact sha256:" in problems
    assert "missing from the layout" in problems


def test_spec_that_is_not_yaml_keeps_the_artifact_and_says_why(tmp_path: Path) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        image = layout.tag(layout.image(marker="bad"), "bad:1.0")
        layout.tag(layout.artifact(image, b"compatibilities: [\n  - {"))

    catalog = good_and_spoiled(tmp_path, spoil)

    assert_good_listed(catalog)
    assert bad_image(catalog).choices[0].artifact is not None
    assert bad_image(catalog).problems


def test_unreadable_untagged_referrer_is_a_layout_problem(tmp_path: Path) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        image = layout.tag(layout.image(marker="bad"), "bad:1.0")
        artifact = layout.artifact(image)
        layout.path(artifact).unlink()
        layout.tag(artifact)

    catalog = good_and_spoiled(tmp_path, spoil)

    assert_good_listed(catalog)
    assert "what it refers to is unknown" in "\n".join(catalog.problems)


def test_unreadable_tag_schema_referrer_is_a_problem_of_its_subject(
    tmp_path: Path,
) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        image = layout.tag(layout.image(marker="bad"), "bad:1.0")
        artifact = layout.artifact(image)
        layout.path(artifact).unlink()
        layout.tag_schema(image, [artifact])

    catalog = good_and_spoiled(tmp_path, spoil)

    assert_good_listed(catalog)
    assert "cannot be used" in "\n".join(bad_image(catalog).problems)


def test_indexes_nested_too_deep_are_cut_off(tmp_path: Path) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        descriptor = layout.image(marker="deep")
        for _ in range(40):
            descriptor = layout.index([descriptor])
        layout.tag(descriptor, "bad:1.0")

    catalog = good_and_spoiled(tmp_path, spoil)

    assert_good_listed(catalog)
    assert "nested deeper than" in problems_of(catalog)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_in_place_of_a_blob_is_refused_without_blocking(tmp_path: Path) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        image = layout.image(marker="bad")
        layout.path(image).unlink()
        os.mkfifo(layout.path(image))
        layout.tag(image, "bad:1.0")

    catalog = good_and_spoiled(tmp_path, spoil)

    assert_good_listed(catalog)
    assert "not a regular file" in "\n".join(bad_image(catalog).problems)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        pytest.param(
            "index.json", b'{"manifests": [', "malformed JSON", id="truncated-index"
        ),
        pytest.param("index.json", b"[]", "not a JSON object", id="index-array"),
        pytest.param(
            "oci-layout",
            b'{"imageLayoutVersion":"2.0.0"}',
            "not supported",
            id="future-version",
        ),
        pytest.param("oci-layout", b"{}", "not supported", id="no-version"),
    ],
)
def test_broken_layout_is_reported_and_its_neighbours_listed(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    good = LayoutBuilder(tmp_path / "a-good")
    image = good.tag(good.image(), "good:1.0")
    good.tag(good.artifact(image, spec_text("good")))
    LayoutBuilder(tmp_path / "b-broken")
    (tmp_path / "b-broken" / name).write_bytes(content)

    catalog = scan_layouts([tmp_path])

    assert_good_listed(catalog)
    assert message in "\n".join(catalog.problems)
    assert "b-broken" in "\n".join(catalog.problems)


def test_missing_index_json_is_reported(tmp_path: Path) -> None:
    LayoutBuilder(tmp_path)
    (tmp_path / "index.json").unlink()

    catalog = scan_layouts([tmp_path])

    assert "index.json: missing" in "\n".join(catalog.problems)


def test_a_file_given_as_layout_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "layout.tar"
    path.write_bytes(b"tar")

    with pytest.raises(LayoutError, match="not a directory"):
        scan_layouts([path])


def test_index_that_lists_itself_is_refused_and_the_walk_ends(tmp_path: Path) -> None:
    def spoil(layout: LayoutBuilder) -> None:
        digest = "sha256:" + "c" * 64
        itself = {"mediaType": INDEX, "digest": digest, "size": 0}
        document = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [itself]}
        data = json.dumps(document).encode()
        itself["size"] = len(data)
        data = json.dumps({**document, "manifests": [itself]}).encode()
        layout.tag(fake(layout, data, digest, INDEX), "bad:1.0")

    catalog = good_and_spoiled(tmp_path, spoil)

    assert_good_listed(catalog)
    assert "tampered" in "\n".join(bad_image(catalog).problems)
