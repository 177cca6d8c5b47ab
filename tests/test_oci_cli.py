"""`fleetcompat images` and `attach` on the command line, and the bundled example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetcompat.cli.main import ExitCode, main
from fleetcompat.oci import scan_layouts
from tests.conftest import REPO
from tests.helpers.oci_layouts import LayoutBuilder, spec_text

EXAMPLE = REPO / "examples" / "oci-layout"


def run(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return exit code, stdout and stderr."""
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_images_json_lists_every_example_image_with_its_choice() -> None:
    code, out, _ = run("images", "--oci-layout", str(EXAMPLE), "--output", "json")

    document = json.loads(out)
    by_name = {i["references"][0]: i for i in document["images"]}
    assert code == ExitCode.OK
    assert sorted(by_name) == [
        "base-runtime:2.0",
        "cuda-inference:12.4",
        "dpdk-forwarder:23.11",
        "onnx-avx512:1.17",
        "python-service:3.12",
    ]
    base = by_name["base-runtime:2.0"]["artifacts"][0]
    assert (base["created"], base["candidates"], base["tags"]) == (
        "2026-01-15T12:00:00Z",
        2,
        ["kernel", "os"],
    )
    python = {
        a["platform"]: a["source"] for a in by_name["python-service:3.12"]["artifacts"]
    }
    assert python == {"linux/amd64": "platform", "linux/arm64": "platform"}


def test_images_table_shows_source_and_tags() -> None:
    code, out, _ = run("images", "--oci-layout", str(EXAMPLE))

    assert code == ExitCode.OK
    assert out.splitlines()[0].split() == [
        "IMAGE",
        "DIGEST",
        "PLATFORM",
        "ARTIFACT",
        "CANDIDATES",
        "CREATED",
        "SETS",
        "TAGS",
        "FROM",
    ]
    assert "nvidia-gpu" in out and "platform" in out and "index" in out


def test_images_table_shows_how_many_artifacts_competed() -> None:
    code, out, _ = run("images", "--oci-layout", str(EXAMPLE))

    rows = [line for line in out.splitlines() if line.startswith("base-runtime:2.0")]
    assert code == ExitCode.OK
    assert rows and "2 (newest used)" in rows[0]


def test_images_on_several_layouts_tells_the_same_reference_apart(
    tmp_path: Path,
) -> None:
    for name in ("site-a", "site-b"):
        layout = LayoutBuilder(tmp_path / name)
        layout.tag(layout.image(marker=name), "app:1.0")

    code, out, _ = run("images", "--oci-layout", str(tmp_path))
    _, data, _ = run("images", "--oci-layout", str(tmp_path), "-o", "json")

    lines = out.splitlines()
    assert code == ExitCode.OK
    assert lines[0].split()[:2] == ["LAYOUT", "IMAGE"]
    assert [line.split()[:2] for line in lines[1:]] == [
        [str(tmp_path / "site-a"), "app:1.0"],
        [str(tmp_path / "site-b"), "app:1.0"],
    ]
    assert [i["layout"] for i in json.loads(data)["images"]] == [
        str(tmp_path / "site-a"),
        str(tmp_path / "site-b"),
    ]


def test_images_on_one_layout_has_no_layout_column() -> None:
    _, out, _ = run("images", "--oci-layout", str(EXAMPLE))

    assert "LAYOUT" not in out.splitlines()[0]


def test_images_with_a_broken_image_exits_partial_and_lists_the_rest(
    tmp_path: Path,
) -> None:
    layout = LayoutBuilder(tmp_path)
    good = layout.tag(layout.image(), "good:1.0")
    layout.tag(layout.artifact(good, spec_text("fine")))
    layout.tag(
        {"mediaType": good["mediaType"], "digest": "sha256:" + "0" * 64, "size": 3},
        "gone:1.0",
    )

    code, out, _ = run("images", "--oci-layout", str(tmp_path))

    assert code == ExitCode.PARTIAL
    assert "good:1.0" in out and "fine" in out
    assert "problem: gone:1.0:" in out and "missing from the layout" in out


def test_images_on_a_non_layout_exits_usage_naming_the_missing_file(
    tmp_path: Path,
) -> None:
    code, _, err = run("images", "--oci-layout", str(tmp_path))

    assert code == ExitCode.USAGE
    assert "no oci-layout file" in err


def test_images_prints_the_skopeo_hint_on_stderr(tmp_path: Path) -> None:
    layout = LayoutBuilder(tmp_path)
    layout.tag(layout.image(), "1.0")

    code, out, err = run("images", "--oci-layout", str(tmp_path), "-o", "json")

    assert code == ExitCode.OK
    assert json.loads(out)["hints"]
    assert "hint:" in err and "skopeo" in err


def test_attach_command_prints_the_artifact_digest(tmp_path: Path) -> None:
    layout = LayoutBuilder(tmp_path / "layout")
    layout.tag(layout.image(), "app:1.0")
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text("cli"))

    code, out, _ = run(
        "attach",
        "app:1.0",
        str(spec),
        "--oci-layout",
        str(layout.root),
        "--created",
        "2026-02-03T04:05:06Z",
    )

    image = scan_layouts([layout.root]).images[0]
    assert code == ExitCode.OK
    assert image.choices[0].artifact is not None
    assert out.strip() == image.choices[0].artifact.digest
    assert image.choices[0].artifact.created == "2026-02-03T04:05:06Z"


def test_attach_command_warns_when_a_newer_artifact_will_still_be_used(
    tmp_path: Path,
) -> None:
    layout = LayoutBuilder(tmp_path / "layout")
    image = layout.tag(layout.image(), "app:1.0")
    newer = layout.tag(layout.artifact(image, spec_text("new"), "2027-01-01T00:00:00Z"))
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text("cli"))

    code, out, err = run(
        "attach",
        "app:1.0",
        str(spec),
        "--oci-layout",
        str(layout.root),
        "--created",
        "2026-02-03T04:05:06Z",
    )

    assert code == ExitCode.OK
    assert out.strip().startswith("sha256:")
    assert err.strip().splitlines() == [
        f"fleetcompat: warning: app:1.0: the image will still use artifact "
        f"{newer['digest']} (newer: created 2027-01-01T00:00:00Z, this one "
        "2026-02-03T04:05:06Z)"
    ]


def test_attach_help_says_when_an_attached_artifact_is_not_used() -> None:
    code, out, _ = run("attach", "--help")

    assert code == ExitCode.OK
    assert "will still use another artifact" in " ".join(out.split())


def test_attach_command_refuses_an_invalid_spec_with_usage_exit(tmp_path: Path) -> None:
    layout = LayoutBuilder(tmp_path / "layout")
    layout.tag(layout.image(), "app:1.0")
    spec = tmp_path / "spec.yaml"
    spec.write_text("not: a spec\n")

    code, _, err = run("attach", "app:1.0", str(spec), "--oci-layout", str(layout.root))

    assert code == ExitCode.USAGE
    assert "spec.yaml" in err


@pytest.mark.parametrize("command", ["images", "attach", "mirror"])
def test_commands_have_help_with_an_example(command: str) -> None:
    code, out, _ = run(command, "--help")

    assert code == ExitCode.OK
    assert f"fleetcompat {command} " in out


def test_example_layout_is_what_the_build_script_makes(tmp_path: Path) -> None:
    copy = tmp_path / "examples"
    (copy / "specs").mkdir(parents=True)
    for spec in (REPO / "examples" / "specs").iterdir():
        (copy / "specs" / spec.name).write_bytes(spec.read_bytes())
    script = copy / "build_example_layout.py"
    script.write_bytes((REPO / "examples" / "build_example_layout.py").read_bytes())

    subprocess.run([sys.executable, str(script)], check=True, capture_output=True)

    built = {
        p.relative_to(copy / "oci-layout"): p.read_bytes()
        for p in (copy / "oci-layout").rglob("*")
        if p.is_file()
    }
    committed = {
        p.relative_to(EXAMPLE): p.read_bytes()
        for p in EXAMPLE.rglob("*")
        if p.is_file()
    }
    assert built == committed


def test_every_example_spec_loads_with_sets_of_rules_that_read_features() -> None:
    from fleetcompat.spec import load_spec

    paths = sorted((REPO / "examples" / "specs").glob("*.yaml"))

    specs = {path.name: load_spec(path) for path in paths}

    assert len(specs) >= 5
    for name, spec in specs.items():
        assert spec.compatibilities, name
        assert all(c.rules for c in spec.compatibilities), name
        assert all(rule.terms() for rule in spec.rules()), name
