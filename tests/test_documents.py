"""Untrusted YAML/JSON: bounded, alias bombs refused, errors name file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetcompat import documents
from fleetcompat.errors import InputError

BOMB = """
a: &a ["x","x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""


def test_yaml_alias_bomb_is_refused() -> None:
    with pytest.raises(InputError, match="alias bomb"):
        documents.parse_text(BOMB, "bomb.yaml")


def test_small_aliases_are_accepted() -> None:
    data = documents.parse_text("a: &x [1, 2]\nb: *x\n", "ok.yaml")

    assert data == {"a": [1, 2], "b": [1, 2]}


def test_oversized_document_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "MAX_DOCUMENT_BYTES", 100)

    with pytest.raises(InputError, match="big.yaml: document is 101 bytes"):
        documents.parse_text("x" * 101, "big.yaml")


def test_yaml_error_names_source_and_line() -> None:
    with pytest.raises(InputError, match=r"^spec.yaml: line 3: "):
        documents.parse_text("a: 1\nb: 2\n  c: [\n", "spec.yaml")


def test_json_is_read_as_json() -> None:
    assert documents.parse_text('{"a": [1, "2"]}', "x.json") == {"a": [1, "2"]}


def test_unreadable_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    with pytest.raises(InputError, match="nope.yaml: cannot read"):
        documents.read_document(missing)


def test_non_utf8_is_refused() -> None:
    with pytest.raises(InputError, match="bin.yaml: not UTF-8"):
        documents.parse_text(b"\xff\xfe a: 1", "bin.yaml")


def test_several_yaml_documents_are_refused() -> None:
    with pytest.raises(InputError, match="two.yaml"):
        documents.parse_text("a: 1\n---\nb: 2\n", "two.yaml")


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        pytest.param({"a": 1}, {"a": 1}, id="parsed-dict"),
        pytest.param("a: 1\n", {"a": 1}, id="yaml-text"),
        pytest.param('{"a": 1}', {"a": 1}, id="json-text"),
    ],
)
def test_load_source_accepts_data_and_text(src: object, expected: object) -> None:
    assert documents.load_source(src, "thing") == expected  # type: ignore[arg-type]


def test_load_source_reads_a_path(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("k: v\n")

    assert documents.load_source(str(path), "thing") == {"k": "v"}
    assert documents.load_source(path, "thing") == {"k": "v"}


def test_yaml_stream_reads_as_a_list_when_asked() -> None:
    text = "kind: A\n---\n---\nkind: B\n"

    data = documents.parse_text(text, "s.yaml", stream_as_list=True)

    assert data == {
        "apiVersion": "v1",
        "kind": "List",
        "items": [{"kind": "A"}, {"kind": "B"}],
    }
    assert documents.parse_text("kind: A\n---\n", "s.yaml", stream_as_list=True) == {
        "kind": "A"
    }


def test_key_written_twice_is_refused_with_its_line() -> None:
    text = "all:\n  hosts:\n    a: {}\n  vars: {}\n  hosts:\n    b: {}\n"

    with pytest.raises(
        InputError, match=r"inv.yaml: line 5: key 'hosts' written twice"
    ):
        documents.parse_text(text, "inv.yaml")


def test_merged_keys_may_be_overridden() -> None:
    text = "base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  y: 3\n"

    assert documents.parse_text(text, "m.yaml")["thing"] == {"x": 1, "y": 3}


def test_json_key_written_twice_is_refused() -> None:
    text = '{"all": {"hosts": {"a": {}}, "hosts": {"b": {}}}}'

    with pytest.raises(InputError, match=r"inv.json: key 'hosts' written twice"):
        documents.parse_text(text, "inv.json")
