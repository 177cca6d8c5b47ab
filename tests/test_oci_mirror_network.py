"""`mirror` when the network misbehaves, and references it must refuse up front.

A registry port that accepts and never answers, one that stops mid-answer, one
that refuses: each fails its reference within the timeout with a one-line message
naming the registry (exit 3). A string that is not a reference exits 2 before any
request is made or anything is written.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetcompat.cli.main import ExitCode, main
from fleetcompat.errors import InputError
from fleetcompat.oci_reference import parse_reference
from tests.helpers.oci_layouts import spec_text
from tests.helpers.registry import Content, ReferrersRegistry

SERVER_LIFETIME = 60.0
"""Seconds a silent server keeps its connections open (longer than any timeout)."""


def run(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return exit code, stdout and stderr."""
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


class SilentServer:
    """A TCP server on loopback that accepts connections and then says `reply`."""

    def __init__(self, reply: bytes = b"") -> None:
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        held = []
        self.sock.settimeout(0.1)
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            held.append(conn)
            if self.reply:
                conn.sendall(self.reply)
        for conn in held:
            conn.close()

    def close(self) -> None:
        self.done.set()
        self.thread.join(SERVER_LIFETIME)
        self.sock.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_a_registry_that_never_answers_fails_within_the_timeout(
    silent: SilentServer, tmp_path: Path
) -> None:
    reference = f"127.0.0.1:{silent.port}/foo:1"

    code, out, _ = run(
        "mirror",
        "--plain-http",
        reference,
        "--oci-layout",
        str(tmp_path / "m"),
        "--timeout",
        "0.5",
    )

    assert code == ExitCode.PARTIAL
    assert out.strip().splitlines() == [
        f"{reference}\t-\t0 artifacts\tfailed: 127.0.0.1:{silent.port}: connected, "
        "but no answer within 0.5 s"
    ]


def test_a_registry_that_stops_mid_answer_fails_naming_the_url(
    tmp_path: Path,
) -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\n"
        b'Content-Length: 1000\r\n\r\n{"schemaVersion": 2'
    )
    server = SilentServer(head)
    reference = f"127.0.0.1:{server.port}/foo:1"
    try:
        code, out, _ = run(
            "mirror",
            "--plain-http",
            reference,
            "--oci-layout",
            str(tmp_path / "m"),
            "--timeout",
            "0.5",
            "-o",
            "json",
        )
    finally:
        server.close()

    assert code == ExitCode.PARTIAL
    assert f"http://127.0.0.1:{server.port}/v2/foo/manifests/1: answer not " in out
    assert "Max retries" not in out


class TricklingServer:
    """A loopback HTTP server that sends headers, then one body byte every 0.2 s.

    It serves one connection at a time and stops itself after `SERVER_LIFETIME`.
    """

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        stop = time.monotonic() + SERVER_LIFETIME
        while not self.done.is_set() and time.monotonic() < stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                self._trickle(conn, stop)

    def _trickle(self, conn: socket.socket, stop: float) -> None:
        head = (
            b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: application/vnd.oci.image.index.v1+json\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        try:
            conn.sendall(head)
            while not self.done.wait(0.2) and time.monotonic() < stop:
                conn.sendall(b" ")
        except OSError:
            return

    def close(self) -> None:
        self.done.set()
        self.thread.join(SERVER_LIFETIME)
        self.sock.close()


def test_a_registry_trickling_its_answer_fails_at_the_timeout(tmp_path: Path) -> None:
    server = TricklingServer()
    reference = f"127.0.0.1:{server.port}/x/y:1"
    try:
        code, out, _ = run(
            "mirror",
            reference,
            "--oci-layout",
            str(tmp_path / "m"),
            "--plain-http",
            "--timeout",
            "1",
        )
    finally:
        server.close()

    assert code == ExitCode.PARTIAL
    assert out.strip().splitlines() == [
        f"{reference}\t-\t0 artifacts\tfailed: http://127.0.0.1:{server.port}"
        "/v2/x/y/manifests/1: answer not complete within 1 s"
    ]


def test_a_refused_connection_fails_with_a_one_line_message(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    reference = f"127.0.0.1:{port}/foo:1"

    code, out, _ = run(
        "mirror", "--plain-http", reference, "--oci-layout", str(tmp_path / "m")
    )

    assert code == ExitCode.PARTIAL
    assert out.strip().endswith(f"failed: 127.0.0.1:{port}: connection refused")


@pytest.mark.parametrize(
    ("reference", "wanted"),
    [
        pytest.param("not a ref!!", "not an image reference", id="spaces"),
        pytest.param("alpine:3", "docker.io/library/alpine:3", id="bare-name"),
        pytest.param("team/app:1", "docker.io/team/app:1", id="no-registry-host"),
        pytest.param("example.com/App:1", "lower case", id="upper-case"),
        pytest.param("example.com/app:", "not an image reference", id="empty-tag"),
        pytest.param(
            "example.com/app@sha256:abc", "not an image reference", id="short-digest"
        ),
        pytest.param(
            "example.com/app@md5:" + "0" * 32, "sha256 or sha512", id="unknown-digest"
        ),
    ],
)
def test_a_bad_reference_exits_usage_before_anything_is_written(
    tmp_path: Path, reference: str, wanted: str
) -> None:
    layout = tmp_path / "m"

    code, out, err = run("mirror", reference, "--oci-layout", str(layout))

    assert code == ExitCode.USAGE
    assert wanted in err and out == ""
    assert not layout.exists()


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        pytest.param(
            "registry.example.com/ml/cuda:12.4",
            ("registry.example.com", "ml/cuda", "12.4", None),
            id="host-path-tag",
        ),
        pytest.param(
            "localhost:5000/app", ("localhost:5000", "app", None, None), id="port"
        ),
        pytest.param("localhost/app", ("localhost", "app", None, None), id="localhost"),
        pytest.param(
            "[::1]:5000/a__b/c-d:v1.0_x",
            ("[::1]:5000", "a__b/c-d", "v1.0_x", None),
            id="ipv6-separators",
        ),
        pytest.param(
            "example.com/app:1@sha256:" + "a" * 64,
            ("example.com", "app", "1", "sha256:" + "a" * 64),
            id="tag-and-digest",
        ),
    ],
)
def test_references_parse_into_registry_repository_tag_digest(
    text: str, parts: tuple[str, str, str | None, str | None]
) -> None:
    parsed = parse_reference(text)

    assert (parsed.registry, parsed.repository, parsed.tag, parsed.digest) == parts


def test_docker_hub_references_go_to_its_api_host() -> None:
    parsed = parse_reference("docker.io/library/alpine:3")

    assert parsed.api_host == "registry-1.docker.io"
    assert parsed.tagged_name == "docker.io/library/alpine:3"
    with pytest.raises(InputError, match="no registry host"):
        parse_reference("alpine")


def test_verbose_mirror_reports_each_reference_on_stderr(tmp_path: Path) -> None:
    content = Content()
    index, _ = content.multi("1.0")
    content.artifact(index, spec_text("general"), "2026-01-01T00:00:00Z")
    with ReferrersRegistry("app", content) as registry:
        reference = f"{registry.host}/app:1.0"
        code, out, err = run(
            "mirror",
            reference,
            "--oci-layout",
            str(tmp_path / "m"),
            "--plain-http",
            "-v",
        )

    assert code == ExitCode.OK
    assert f"{reference}: resolved to sha256:" in err
    assert f"{reference}: 1 compatibility referrers of {index['digest']}" in err
    assert f"{reference}: copied 3 manifests and 1 artifacts" in err
    assert "1 artifacts\tok" in out


def test_a_registry_asking_for_credentials_none_are_for_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    server = SilentServer(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
    reference = f"127.0.0.1:{server.port}/foo:1"
    try:
        code, out, _ = run(
            "mirror", "--plain-http", reference, "--oci-layout", str(tmp_path / "m")
        )
    finally:
        server.close()

    assert code == ExitCode.PARTIAL
    assert f"127.0.0.1:{server.port}: asks for authentication" in out
