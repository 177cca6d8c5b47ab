"""Reading OCI layouts in the shapes real tools write, and NFD's artifact choice."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleetcompat.errors import LayoutError
from fleetcompat.oci import (
    ZERO_TIME,
    Catalog,
    Image,
    chosen_specs,
    find_image,
    parse_created,
    scan_layouts,
)
from tests.helpers.oci_layouts import EMPTY, NFD, LayoutBuilder, spec_text


def only_image(catalog: Catalog) -> Image:
    """The single image of a catalog."""
    assert len(catalog.images) == 1, [i.name for i in catalog.images]
    return catalog.images[0]


def chosen(image: Image) -> dict[str | None, tuple[str | None, str | None]]:
    """Platform name -> (artifact digest, source) of an image's choices."""
    return {
        (c.platform.name if c.platform else None): (
            c.artifact.digest if c.artifact else None,
            c.source,
        )
        for c in image.choices
    }


def test_oras_shape_untagged_referrer_of_index_serves_every_platform(
    tmp_path: Path,
) -> None:
    layout = LayoutBuilder(tmp_path)
    index, children = layout.multi()
    layout.tag(index, "v1")
    for child in children.values():
        layout.tag(child)
    artifact = layout.tag(layout.artifact(index, spec_text("a", "b")))

    image = only_image(scan_layouts([tmp_path]))

    assert image.references == ("v1",)
    assert [p.name for p in image.platforms] == ["linux/amd64", "linux/arm64"]
    assert chosen(image) == {
        "linux/amd64": (artifact["digest"], "index"),
        "linux/arm64": (artifact["digest"], "index"),
    }
    assert image.choices[0].artifact is not None
    assert image.choices[0].artifact.compatibility_count == 2
    assert image.choices[0].artifact.tags == ("a", "b")
    assert image.problems == ()


def test_per_platform_artifact_wins_over_the_index_artifact(tmp_path: Path) -> None:
    layout = LayoutBuilder(tmp_path)
    index, children = layout.multi()
    layout.tag(index, "v1")
    general = layout.tag(layout.artifact(index, created="2025-06-01T00:00:00Z"))
    specific = layout.tag(
        layout.artifact(children["amd64"], created="2024-01-01T00:00:00Z")
    )

    image = only_image(scan_layouts([tmp_path]))

    assert chosen(image) == {
        "linux/amd64": (specific["digest"], "platform"),
        "linux/arm64": (general["digest"], "index"),
    }


def test_tag_schema_index_lists_referrers_regclient_style(tmp_path: Path) -> None:
    layout = LayoutBuilder(tmp_path)
    image_desc = layout.tag(layout.image(), "app:1.0")
    artifact = layout.artifact(image_desc)
    layout.tag_schema(image_desc, [artifact])

    image = only_image(scan_layouts([tmp_path]))

    assert chosen(image) == {None: (artifact["digest"], "manifest")}


def test_tag_schema_listing_a_referrer_without_subject_still_counts(
    tmp_path: Path,
) -> None:
    layout = LayoutBuilder(tmp_path)
    image_desc = layout.tag(layout.image(), "app:1.0")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": NFD,
        "config": layout.blob(b"{}", EMPTY),
        "layers": [layout.blob(spec_text().encode(), "text/yaml")],
    }
    artifact = layout.document(manifest, manifest["mediaType"])
    layout.tag_schema(image_desc, [{**artifact, "artifactType": NFD}])

    image = only_image(scan_layouts([tmp_path]))

    assert image.choices[0].artifact is not None
    assert image.choices[0].artifact.subject == image_desc["digest"]


def test_referrer_in_both_forms_is_one_candidate(tmp_path: Path) -> None:
    layout = LayoutBuilder(tmp_path)
    image_desc = layout.tag(layout.image(), "app:1.0")
    artifact = layout.tag(layout.artifact(image_desc))
    layout.tag_schema(image_desc, [artifact])

    image = only_image(scan_layouts([tmp_path]))

    assert image.choices[0].candidates == 1


def test_nested_indexes_are_walked_to_their_platform_manifests(
    tmp_path: Path,
) -> None:
    layout = LayoutBuilder(tmp_path)
    inner, children = layout.multi()
    outer = layout.tag(layout.index([inner]), "nested")
    artifact = layout.tag(layout.artifact(children["arm64"]))

    image = only_image(scan_layouts([tmp_path]))

    assert image.digest == outer["digest"]
    assert chosen(image)["linux/arm64"] == (artifact["digest"], "platform")
    assert chosen(image)["linux/amd64"] == (None, None)


@pytest.mark.parametrize(
    ("stamps", "winner"),
    [
        pytest.param(
            ["2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"], 1, id="newest-wins"
        ),
        pytest.param([None, "2020-01-01T00:00:00Z"], 1, id="missing-is-oldest"),
        pytest.param(["yesterday", "1999-12-31T23:59:59Z"], 1, id="bad-is-oldest"),
        pytest.param(
            ["2025-01-01T02:00:00+02:00", "2025-01-01T01:00:00Z"],
            1,
            id="offsets-compared-in-utc",
        ),
        pytest.param(
            ["2025-01-01T00:00:00.5Z", "2025-01-01T00:00:00Z"],
            0,
            id="fractions-count",
        ),
    ],
)
def test_newest_artifact_by_created_annotation_is_chosen(
    tmp_path: Path, stamps: list[str | None], winner: int
) -> None:
    layout = LayoutBuilder(tmp_path)
    image_desc = layout.tag(layout.image(), "app:1.0")
    artifacts = [
        layout.tag(layout.artifact(image_desc, spec_text(f"s{n}"), stamp))
        for n, stamp in enumerate(stamps)
    ]

    image = only_image(scan_layouts([tmp_path]))

    assert chosen(image)[None] == (artifacts[winner]["digest"], "manifest")
    assert image.choices[0].candidates == len(stamps)


def test_equal_timestamps_pick_the_greatest_digest(tmp_path: Path) -> None:
    layout = LayoutBuilder(tmp_path)
    image_desc = layout.tag(layout.image(), "app:1.0")
    digests = [
        layout.tag(layout.artifact(image_desc, spec_text(f"s{n}"), None))["digest"]
        for n in range(3)
    ]

    image = only_image(scan_layouts([tmp_path]))

    assert chosen(image)[None][0] == max(digests)


def test_skopeo_shape_lists_images_and_hints_at_missing_referrers(
    tmp_path: Path,
) -> None:
    layout = LayoutBuilder(tmp_path)
    layout.tag(layout.image(), "1.0")

    catalog = scan_layouts([tmp_path])

    assert only_image(catalog).choices[0].artifact is None
    assert catalog.complete
    assert any("skopeo" in hint for hint in catalog.hints)


def test_artifact_whose_subject_is_gone_gets_a_digest_rewrite_hint(
    tmp_path: Path,
) -> None:
    layout = LayoutBuilder(tmp_path)
    original = layout.image(marker="before-copy")
    layout.tag(layout.image(marker="after-copy"), "1.0")
    layout.tag(layout.artifact(original))

    catalog = scan_layouts([tmp_path])

    assert only_image(catalog).choices[0].artifact is None
    assert any(original["digest"] in hint for hint in catalog.hints)


def test_legacy_artifact_manifest_is_read_from_its_blobs(tmp_path: Path) -> None:
    layout = LayoutBuilder(tmp_path)
    image_desc = layout.tag(layout.image(), "app:1.0")
    artifact = layout.tag(layout.artifact(image_desc, spec_text("old"), legacy=True))

    image = only_image(scan_layouts([tmp_path]))

    assert chosen(image)[None] == (artifact["digest"], "manifest")
    assert image.choices[0].artifact is not None
    assert image.choices[0].artifact.tags == ("old",)


def test_artifact_type_falls_back_to_config_media_type(tmp_path: Path) -> None:
    layout = LayoutBuilder(tmp_path)
    image_desc = layout.tag(layout.image(), "app:1.0")
    artifact = layout.tag(
        layout.artifact(image_desc, artifact_type=None, config_type=NFD)
    )

    image = only_image(scan_layouts([tmp_path]))

    assert chosen(image)[None] == (artifact["digest"], "manifest")


def test_other_referrers_such_as_signatures_are_ignored(tmp_path: Path) -> None:
    layout = LayoutBuilder(tmp_path)
    image_desc = layout.tag(layout.image(), "app:1.0")
    layout.tag(layout.artifact(image_desc, artifact_type="application/vnd.cncf.notary"))

    image = only_image(scan_layouts([tmp_path]))

    assert image.choices[0].artifact is None
    assert image.choices[0].candidates == 0


def test_full_references_and_cosign_tags_as_zarf_writes_them(tmp_path: Path) -> None:
    layout = LayoutBuilder(tmp_path)
    image_desc = layout.tag(layout.image(), "ghcr.io/org/app:1.0")
    hexdigest = image_desc["digest"][7:]
    layout.tag(layout.image(marker="sig"), f"ghcr.io/org/app:sha256-{hexdigest}.sig")

    catalog = scan_layouts([tmp_path])

    assert only_image(catalog).references == ("ghcr.io/org/app:1.0",)
    assert find_image(catalog, "app:1.0").digest == image_desc["digest"]
    assert find_image(catalog, f"app@{image_desc['digest']}").name == (
        "ghcr.io/org/app:1.0"
    )


def test_one_digest_under_several_tags_is_one_image(tmp_path: Path) -> None:
    layout = LayoutBuilder(tmp_path)
    image_desc = layout.image()
    layout.tag(image_desc, "1.0")
    layout.tag(image_desc, "latest")

    assert only_image(scan_layouts([tmp_path])).references == ("1.0", "latest")


def test_untagged_image_without_subject_is_listed_by_digest(tmp_path: Path) -> None:
    layout = LayoutBuilder(tmp_path)
    image_desc = layout.tag(layout.image())

    image = only_image(scan_layouts([tmp_path]))

    assert image.references == ()
    assert image.name == image_desc["digest"]


def test_index_whose_subject_is_its_own_child_ends(tmp_path: Path) -> None:
    layout = LayoutBuilder(tmp_path)
    child = layout.image()
    child["platform"] = {"os": "linux", "architecture": "amd64"}
    subject = {k: child[k] for k in ("mediaType", "digest", "size")}
    loop = layout.tag(layout.index([child], subject=subject), "loop")
    layout.tag(layout.artifact(loop))

    image = only_image(scan_layouts([tmp_path]))

    assert image.digest == loop["digest"]
    assert chosen(image)["linux/amd64"][1] == "index"


def test_directory_of_layouts_reads_each_layout(tmp_path: Path) -> None:
    for name in ("zot-b", "zot-a"):
        layout = LayoutBuilder(tmp_path / name)
        layout.tag(layout.image(marker=name), "1.0")
    (tmp_path / "cache.db").write_bytes(b"not a layout")

    catalog = scan_layouts([tmp_path])

    assert [p.name for p in catalog.layouts] == ["zot-a", "zot-b"]
    assert len(catalog.images) == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda p: p / "absent", "no such directory", id="absent"),
        pytest.param(lambda p: p, "no oci-layout file", id="empty-dir"),
    ],
)
def test_path_that_is_not_a_layout_is_refused_naming_what_is_missing(
    tmp_path: Path, make: object, message: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]

    with pytest.raises(LayoutError, match=message):
        scan_layouts([path])


def test_chosen_specs_pairs_platforms_with_their_spec_bytes(tmp_path: Path) -> None:
    layout = LayoutBuilder(tmp_path)
    index, children = layout.multi()
    layout.tag(index, "multi")
    layout.tag(layout.artifact(children["amd64"], spec_text("amd")))
    single = layout.tag(layout.image(marker="single"), "single")
    layout.tag(layout.artifact(single, spec_text("one")))

    pairs = {
        image.name: [(p.name if p else None, a.tags) for p, a in choices]
        for image, choices in chosen_specs(scan_layouts([tmp_path]))
    }

    assert pairs == {"multi": [("linux/amd64", ("amd",))], "single": [(None, ("one",))]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            "2025-03-04T05:06:07Z", datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC), id="z"
        ),
        pytest.param(
            "2025-03-04T07:06:07+02:00",
            datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC),
            id="offset",
        ),
        pytest.param(
            "2025-03-04T05:06:07.123456789Z",
            datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC),
            id="nanoseconds",
        ),
        pytest.param("2025-03-04", ZERO_TIME, id="date-only"),
        pytest.param("2025-03-04 05:06:07Z", ZERO_TIME, id="space-separator"),
        pytest.param("2025-13-04T05:06:07Z", ZERO_TIME, id="month-13"),
        pytest.param("", ZERO_TIME, id="empty"),
        pytest.param(None, ZERO_TIME, id="missing"),
    ],
)
def test_created_is_parsed_as_go_rfc3339(value: str | None, expected: datetime) -> None:
    assert parse_created(value) == expected


def test_a_layout_named_twice_is_read_once_in_first_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("lay", "other"):
        layout = LayoutBuilder(tmp_path / name)
        layout.tag(layout.image(marker=name), "1.0")
    monkeypatch.chdir(tmp_path)

    catalog = scan_layouts([Path("other"), Path("lay"), Path("./lay/"), tmp_path])

    assert [p.name for p in catalog.layouts] == ["other", "lay"]
    assert len(catalog.images) == 2
