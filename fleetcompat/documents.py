"""Untrusted YAML and JSON documents, read with bounds.

Everything a user hands us (inventories, specs, NodeFeature dumps, OCI manifests) is
parsed here: the size is bounded before parsing, YAML aliases may not expand past a
node budget (an alias bomb is refused instead of exhausting memory), and every parse
error becomes one line naming the source and, for YAML, the line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from fleetcompat.errors import InputError
from fleetcompat.vault import Vaulted

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
"""Largest document accepted from a file or string."""

MAX_YAML_NODES = 1_000_000
"""Most YAML nodes a document may expand to, counting every alias as its subtree."""


class _BoundedLoader(yaml.SafeLoader):
    """A safe loader that counts nodes, including those reached through aliases."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            node = super().compose_node(parent, index)
            self._charge(self._sizes.get(id(node), 1), event.start_mark)
            return node
        before = self._nodes
        node = super().compose_node(parent, index)
        self._charge(1, getattr(node, "start_mark", None))
        self._sizes[id(node)] = self._nodes - before
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        """A mapping, refusing a key written twice (go-yaml refuses it too).

        Without this the later value would silently win: in an inventory, a
        second `hosts:` would drop every host of the first. Keys merged in with
        `<<` may be overridden, as YAML intends.
        """
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, list | dict):
                    continue  # unhashable keys are refused by the constructor
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} written twice", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)

    def _charge(self, count: int, mark: Any) -> None:
        self._nodes += count
        if self._nodes > MAX_YAML_NODES:
            where = f"line {mark.line + 1}: " if mark is not None else ""
            raise yaml.YAMLError(
                f"{where}document expands to more than "
                f"{MAX_YAML_NODES} nodes (an alias bomb?)"
            )


class InventoryLoader(_BoundedLoader):
    """The bounded loader that also reads Ansible's `!vault |` strings (inventories).

    A `!vault` scalar becomes a `fleetcompat.vault.Vaulted`, still encrypted;
    other documents refuse the tag, as any unknown tag.
    """


def _construct_vaulted(loader: _BoundedLoader, node: Any) -> Any:
    """A `!vault` node as an undecrypted Vaulted, or an error when not a string."""
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, "!vault must tag a string (the vault envelope)", node.start_mark
        )
    return Vaulted(str(node.value), node.start_mark.line + 1)


InventoryLoader.add_constructor("!vault", _construct_vaulted)


class _DuplicateKey(Exception):
    """A JSON object with a key written twice."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's dict, refusing a key written twice (as the YAML reader does)."""
    built: dict[str, Any] = {}
    for key, value in pairs:
        if key in built:
            raise _DuplicateKey(key)
        built[key] = value
    return built


def parse_text(
    text: str | bytes,
    source: str,
    loader: type[_BoundedLoader] | None = None,
    *,
    stream_as_list: bool = False,
) -> Any:
    """Parse a YAML or JSON document; `source` names it in errors.

    Raises InputError for oversized, undecodable or malformed documents. A YAML
    stream of several documents (`---`) is refused, unless `stream_as_list`, which
    reads it as Kubernetes tools do: a `kind: List` of its documents (empty ones
    skipped), the node budget shared by all. `loader` may be a subclass of the
    bounded loader that resolves scalars its own way (the spec reader resolves them
    as Go's YAML library does).
    """
    if len(text) > MAX_DOCUMENT_BYTES:
        raise InputError(
            f"{source}: document is {len(text)} bytes, more than the "
            f"{MAX_DOCUMENT_BYTES} accepted"
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{source}: not UTF-8 text ({exc.reason})") from None

    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError:
            pass  # YAML flow style also starts so; let the YAML parser say why.
        except _DuplicateKey as exc:
            raise InputError(f"{source}: key {exc.key!r} written twice") from None

    loader_instance = (loader or _BoundedLoader)(text)
    try:
        if stream_as_list:
            document = _stream(loader_instance)
        else:
            document = loader_instance.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = exc.problem or exc.context or "malformed YAML"
        raise InputError(f"{source}: {where}{problem}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: {exc}") from None
    finally:
        loader_instance.dispose()
    return document


def _stream(loader: _BoundedLoader) -> Any:
    """The one document of a stream, or a `kind: List` of its several documents."""
    documents = []
    while loader.check_data():  # type: ignore[no-untyped-call]
        document = loader.get_data()
        if document is not None:
            documents.append(document)
    if len(documents) == 1:
        return documents[0]
    if not documents:
        return None
    return {"apiVersion": "v1", "kind": "List", "items": documents}


def read_document(
    path: str | Path,
    loader: type[_BoundedLoader] | None = None,
    *,
    stream_as_list: bool = False,
) -> Any:
    """Read and parse a YAML or JSON file, bounded in size (see `parse_text`).

    Raises InputError naming the file when it cannot be read or parsed.
    """
    path = Path(path)
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_text(data, str(path), loader, stream_as_list=stream_as_list)


def load_source(
    src: str | Path | dict[str, Any] | list[Any],
    what: str,
    loader: type[_BoundedLoader] | None = None,
    *,
    stream_as_list: bool = False,
) -> Any:
    """Turn a path, a YAML/JSON string or parsed data into parsed data.

    A string that holds a newline or starts like a document is taken as text;
    any other string is a path. `what` names the kind of input in errors.
    """
    if isinstance(src, dict | list):
        return src
    if isinstance(src, Path):
        return read_document(src, loader, stream_as_list=stream_as_list)
    if "\n" in src or src.lstrip()[:1] in ("{", "["):
        return parse_text(src, f"<{what} text>", loader, stream_as_list=stream_as_list)
    return read_document(src, loader, stream_as_list=stream_as_list)
