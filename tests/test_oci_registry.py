"""`mirror` against real registries: Debian's docker-registry and one with referrers.

docker-registry 2.8.2 has no referrers API, so mirroring from it takes the
`sha256-<hex>` tag-schema path; `ReferrersRegistry` covers the API path. The round
trip mirror -> carry -> attach -> read is what an air-gapped site does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetcompat.attach import attach
from fleetcompat.cli.main import ExitCode, main
from fleetcompat.mirror import mirror
from fleetcompat.oci import Image, chosen_specs, scan_layouts
from fleetcompat.spec import load_spec
from tests.helpers.oci_layouts import spec_text
from tests.helpers.registry import Content, ReferrersRegistry, digest_of, push

pytestmark = pytest.mark.registry

REGISTRY_BINARY = "/usr/bin/docker-registry"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    """Poll until the registry answers (or its process died)."""
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    raise RuntimeError("docker-registry did not come up")


@pytest.fixture
def docker_registry(tmp_path: Path) -> Iterator[str]:
    """Debian's docker-registry on 127.0.0.1; yields host:port."""
    if not os.path.exists(REGISTRY_BINARY):
        message = f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)

    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'storage'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    process = subprocess.Popen(
        [REGISTRY_BINARY, "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/v2/", process)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def sample() -> tuple[Content, dict[str, str]]:
    """An image with an index artifact, a newer amd64 artifact and a signature."""
    content = Content()
    index, children = content.multi("1.0")
    digests = {
        "index": content.artifact(index, spec_text("general"), "2026-01-01T00:00:00Z")[
            "digest"
        ],
        "amd64": content.artifact(
            children["amd64"], spec_text("amd"), "2026-02-01T00:00:00Z"
        )["digest"],
        "signature": content.artifact(
            index, "sig", "2026-03-01T00:00:00Z", "application/vnd.cncf.notary"
        )["digest"],
    }
    return content, digests


def choices(image: Image) -> dict[str, tuple[str | None, str | None]]:
    """platform -> (artifact digest, source)."""
    return {
        c.platform.name: (c.artifact.digest if c.artifact else None, c.source)
        for c in image.choices
        if c.platform
    }


def test_mirror_from_docker_registry_uses_the_tag_schema(
    docker_registry: str, tmp_path: Path
) -> None:
    content, digests = sample()
    push(f"http://{docker_registry}", "team/app", content)
    reference = f"{docker_registry}/team/app:1.0"

    result = mirror([reference], tmp_path / "mirror", plain_http=True)

    assert [i.problem for i in result.images] == [None]
    assert sorted(result.images[0].artifacts) == sorted(
        [digests["index"], digests["amd64"]]
    )
    image = scan_layouts([tmp_path / "mirror"]).images[0]
    assert image.references == (reference,)
    assert choices(image) == {
        "linux/amd64": (digests["amd64"], "platform"),
        "linux/arm64": (digests["index"], "index"),
    }


def test_mirror_carry_attach_audit_round_trip(
    docker_registry: str, tmp_path: Path
) -> None:
    content, digests = sample()
    push(f"http://{docker_registry}", "team/app", content)
    mirror([f"{docker_registry}/team/app:1.0"], tmp_path / "out", plain_http=True)
    carried = tmp_path / "inside"
    shutil.copytree(tmp_path / "out", carried)
    local_spec = tmp_path / "site.yaml"
    local_spec.write_text(spec_text("site-policy"))

    added = attach(
        carried,
        "team/app:1.0",
        local_spec,
        created=datetime(2026, 6, 1, tzinfo=UTC),
    )

    ((image, pairs),) = chosen_specs(scan_layouts([carried]))
    by_platform = {p.name if p else None: a for p, a in pairs}
    assert by_platform["linux/arm64"].digest == added.digest
    assert by_platform["linux/amd64"].digest == digests["amd64"]
    assert load_spec(by_platform["linux/arm64"].spec_bytes.decode()).compatibilities

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("all:\n  hosts:\n    here:\n      ansible_connection: local\n")
    audited = CliRunner().invoke(
        main,
        ["audit", "-i", str(inventory), "--oci-layout", str(carried)]
        + ["--db", str(tmp_path / "f.db"), "--out", str(tmp_path / "report")],
    )

    assert audited.exit_code == 0, audited.output
    long = (tmp_path / "report" / "results_long.csv").read_text()
    here = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine)
    used = {"amd64": digests["amd64"], "arm64": added.digest}.get(here or "")
    if used is not None:  # the spec of this machine's platform judged it
        assert f"here,{image.name}" in long and used in long


def test_mirror_with_images_copies_configs_and_layers(
    docker_registry: str, tmp_path: Path
) -> None:
    content, _ = sample()
    push(f"http://{docker_registry}", "team/app", content)

    mirror(
        [f"{docker_registry}/team/app:1.0"],
        tmp_path / "full",
        plain_http=True,
        with_images=True,
    )

    stored = {p.name for p in (tmp_path / "full" / "blobs" / "sha256").iterdir()}
    signature_layer = digest_of(b"sig")[7:]
    assert {d[7:] for d in content.blobs} - stored == {signature_layer}


def test_mirror_uses_the_referrers_api_when_the_registry_has_it(tmp_path: Path) -> None:
    content, digests = sample()
    with ReferrersRegistry("app", content) as registry:
        result = mirror([f"{registry.host}/app:1.0"], tmp_path / "m", plain_http=True)

    assert result.images[0].problem is None
    assert any("/referrers/" in path for path in registry.requests)
    assert not any("/manifests/sha256-" in path for path in registry.requests)
    image = scan_layouts([tmp_path / "m"]).images[0]
    assert choices(image)["linux/amd64"] == (digests["amd64"], "platform")


def test_mirror_follows_paginated_referrers_answers(tmp_path: Path) -> None:
    content = Content()
    index, _ = content.multi("1.0")
    stamps = [f"2026-01-0{day}T00:00:00Z" for day in range(1, 6)]
    made = [
        content.artifact(index, spec_text(f"p{n}"), t) for n, t in enumerate(stamps)
    ]
    with ReferrersRegistry("app", content) as registry:
        registry.page_size = 2
        result = mirror([f"{registry.host}/app:1.0"], tmp_path / "m", plain_http=True)

    assert sorted(result.images[0].artifacts) == sorted(a["digest"] for a in made)
    pages = [p for p in registry.requests if f"/referrers/{index['digest']}" in p]
    assert len(pages) == 3


def test_tampered_manifest_from_a_registry_is_refused_and_others_copied(
    tmp_path: Path,
) -> None:
    content, _ = sample()
    other, _ = content.multi("2.0")
    with ReferrersRegistry("app", content) as registry:
        registry.tampered.add(content.tags["1.0"])
        result = mirror(
            [f"{registry.host}/app@{content.tags['1.0']}", f"{registry.host}/app:2.0"],
            tmp_path / "m",
            plain_http=True,
        )

    problems = [i.problem for i in result.images]
    assert problems[0] is not None and "hashes to" in problems[0]
    assert problems[1] is None
    assert [i.digest for i in scan_layouts([tmp_path / "m"]).images] == [
        other["digest"]
    ]


def test_mirror_command_exits_partial_when_a_reference_is_missing(
    tmp_path: Path,
) -> None:
    content, _ = sample()
    with ReferrersRegistry("app", content) as registry:
        result = CliRunner().invoke(
            main,
            [
                "mirror",
                f"{registry.host}/app:1.0",
                f"{registry.host}/app:9.9",
                "--oci-layout",
                str(tmp_path / "m"),
                "--plain-http",
            ],
        )

    assert result.exit_code == ExitCode.PARTIAL
    assert "app:9.9" in result.stdout and "not found" in result.stdout
