"""Image references (`registry/repository:tag@digest`), checked before any request.

The grammar is distribution's reference grammar (`distribution/reference`, which
oras-go, containerd and Docker use): a registry host with an optional port, a
repository of lower-case path components, an optional tag, an optional digest.

Deliberate choice: the registry must be written. Docker reads a bare `alpine:3`
as `docker.io/library/alpine:3`; oras refuses it, and so does `mirror`, which
should never talk to a registry the user did not name. `docker.io/...` is
fetched from Docker Hub's API host, `registry-1.docker.io`, as Docker does. A
reference without tag or digest means the `latest` tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleetcompat.errors import InputError

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_REFERENCE = re.compile(
    rf"(?P<registry>{_HOST})/(?P<repository>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?"
)
_DIGESTS = {"sha256": 64, "sha512": 128}
_MAX_NAME = 255
DOCKER_HUB_API = "registry-1.docker.io"


@dataclass(frozen=True)
class ImageReference:
    """A parsed reference: where the image lives and which one it is."""

    text: str
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def api_host(self) -> str:
        """The host (and port) the registry API is reached at."""
        return DOCKER_HUB_API if self.registry == "docker.io" else self.registry

    @property
    def tagged_name(self) -> str:
        """`registry/repository:tag`, the ref.name written for a tagged image."""
        return f"{self.registry}/{self.repository}:{self.tag or 'latest'}"


def parse_reference(text: str) -> ImageReference:
    """Parse a reference; raise InputError saying what is wrong."""
    match = _REFERENCE.fullmatch(text)
    if match is None or not _is_host(match["registry"]):
        raise InputError(_why_not(text))

    registry, repository = match["registry"], match["repository"]
    if len(registry) + 1 + len(repository) > _MAX_NAME:
        raise InputError(f"{text!r}: name longer than {_MAX_NAME} characters")
    digest = match["digest"]
    if digest is not None:
        algorithm, _, encoded = digest.partition(":")
        if _DIGESTS.get(algorithm) != len(encoded) or encoded != encoded.lower():
            raise InputError(
                f"{text!r}: digest {digest} is not a lower-case sha256 or sha512 one"
            )
    return ImageReference(text, registry, repository, match["tag"], digest)


def _is_host(first: str) -> bool:
    """Whether a reference's first component names a registry, as Docker decides."""
    return "." in first or ":" in first or first == "localhost"


def _why_not(text: str) -> str:
    """The message for a string that does not match the grammar."""
    first, slash, _ = text.partition("/")
    if (
        text
        and not (slash and _is_host(first))
        and re.fullmatch(r"[a-z0-9._/:@-]+", text)
    ):
        example = f"docker.io/{text}" if slash else f"docker.io/library/{text}"
        return (
            f"{text!r}: no registry host; write it in full, e.g. {example} "
            "(a name without one is not taken as Docker Hub's)"
        )
    return (
        f"{text!r}: not an image reference (want registry/repository[:tag]"
        "[@sha256:<hex>], repository in lower case)"
    )
