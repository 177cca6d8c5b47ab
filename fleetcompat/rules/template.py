"""The part of Go's text/template that NFD rule templates use.

NFD renders `varsTemplate` (and `labelsTemplate`) with Go's text/template, option
`missingkey=error`, over the matched elements: `.<domain>.<feature>` is a list of
elements, each a map (`Name`, `Value` for flags and attributes; an instance's own
attributes). The output is split into `key=value` lines.

Supported here: literal text, `{{- ` / ` -}}` trimming, comments, `range` (with
`else`; over lists, maps by sorted key, and integers), `if` / `else if` / `else`,
`with` / `else with`, fields and field chains on maps (`.Name`, `.cpu.cpuid`,
`.class`), `.`, variables as Go has them (`$` is the data passed in; `{{$x := ...}}`
declares, `{{$x = ...}}` assigns; `range $e :=` binds the element and
`range $i, $e :=` the index or key and the element; `if`/`with` may declare one; a
variable's scope ends at the `end` of the control structure that declares it, else
at the template's end; `$x.a.b` walks fields), string, number and boolean
constants, parentheses, pipes, and the functions index, len, eq, ne, lt, le, gt, ge,
and, or, not, print, lower, upper, trim, trimPrefix, trimSuffix, contains,
hasPrefix, hasSuffix, replace.
Anything else (`define`/`template`/`block`, `break`/`continue`, a declaration
inside parentheses, field chains on a parenthesized pipeline, other Sprig
functions) is refused with a RuleError when the template would run; NFD would run
it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from fleetcompat.errors import RuleError
from fleetcompat.rules.template_values import (
    FUNCTIONS,
    TemplateError,
    Value,
    format_value,
    truth,
    type_name,
)

MAX_TEMPLATE_SIZE = 64 * 1024
"""NFD's limit on a template's length."""

_SPACE = " \t\r\n"
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\\n]|\\.)*")
      | (?P<raw>`[^`]*`)
      | (?P<char>'(?:[^'\\]|\\.)+')
      | (?P<number>[+-]?\d[\w.+-]*)
      | (?P<field>(?:\.[A-Za-z_]\w*)+)
      | (?P<dot>\.)
      | (?P<var>\$\w*(?:\.[A-Za-z_]\w*)*)
      | (?P<ident>[A-Za-z_]\w*)
      | (?P<punct>[()|,]|:=|=)
    )""",
    re.VERBOSE,
)

# The tree: text is a str; actions are tuples whose first item names the kind.
Node = Any


@dataclass(frozen=True)
class Template:
    """A parsed template, or the error that parsing it gave (raised when run)."""

    source: str
    nodes: tuple[Node, ...]
    error: str | None = None

    def render(self, data: Value) -> str:
        """The template's output over `data`; raises RuleError."""
        if self.error is not None:
            raise RuleError(f"failed to parse template: {self.error}")
        out: list[str] = []
        try:
            _run(self.nodes, data, out, _Variables(data))
        except TemplateError as exc:
            raise RuleError(f"failed to expand template: {exc}") from None
        return "".join(out)

    def expand(self, data: Value) -> dict[str, str]:
        """NFD's ExpandMap: the output's non-blank lines as `key=value` pairs."""
        values: dict[str, str] = {}
        for line in self.render(data).split("\n"):
            trimmed = line.strip()
            if not trimmed:
                continue
            key, sep, value = trimmed.partition("=")
            if not sep:
                raise RuleError(
                    f"failed to expand template: missing value in expanded template "
                    f"line {json.dumps(trimmed)}, (format must be '<key>=<value>')"
                )
            values[key] = value
        return values


def compile_template(source: str) -> Template:
    """Parse a template once; a parse error is kept and raised when it runs."""
    if len(source.encode()) > MAX_TEMPLATE_SIZE:
        return Template(
            source,
            (),
            f"template exceeds maximum allowed size: {len(source.encode())} bytes "
            f"> {MAX_TEMPLATE_SIZE} limit",
        )
    try:
        items = _lex(source)
        nodes, rest, stop = _parse_list(items, 0, ["$"])
        if stop is not None:
            raise TemplateError(f"unexpected {{{{{stop[0]}}}}}")
        assert rest == len(items)
        return Template(source, tuple(nodes))
    except TemplateError as exc:
        return Template(source, (), f"invalid template: {exc}")


def _lex(text: str) -> list[tuple[str, Any]]:
    """Split into ("text", str) and ("action", tokens) items, applying trims."""
    items: list[tuple[str, Any]] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            items.append(("text", text[pos:]))
            return items
        body = start + 2
        if text.startswith("-", body) and text[body + 1 : body + 2] in tuple(_SPACE):
            items.append(("text", text[pos:start].rstrip(_SPACE)))
            body += 2
        else:
            items.append(("text", text[pos:start]))

        if text.startswith("/*", body):
            pos = _skip_comment(text, body)
            continue
        tokens, pos, trim_right = _scan_action(text, body)
        items.append(("action", tokens))
        if trim_right:
            while pos < len(text) and text[pos] in _SPACE:
                pos += 1


def _skip_comment(text: str, body: int) -> int:
    """Skip `/* ... */` and the closing delimiter; return the position after it."""
    begin = text.find("/*", body)
    end = text.find("*/", begin + 2)
    if end < 0:
        raise TemplateError("unclosed comment")
    after = end + 2
    if text.startswith("}}", after):
        return after + 2
    if text[after : after + 1] in tuple(_SPACE) and text.startswith("-}}", after + 1):
        pos = after + 4
        while pos < len(text) and text[pos] in _SPACE:
            pos += 1
        return pos
    raise TemplateError("comment ends before closing delimiter")


def _scan_action(text: str, pos: int) -> tuple[list[tuple[str, str]], int, bool]:
    """Tokens of one action up to `}}`; returns them, the end, and right-trim."""
    tokens: list[tuple[str, str]] = []
    while True:
        if text.startswith("}}", pos):
            return tokens, pos + 2, False
        if (
            text[pos : pos + 1] in tuple(_SPACE)
            and text[pos : pos + 1] != ""
            and text.startswith("-}}", pos + 1)
        ):
            return tokens, pos + 4, True
        if pos >= len(text):
            raise TemplateError("unclosed action")
        if text[pos] in _SPACE:
            pos += 1
            continue
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise TemplateError(f"unexpected {text[pos]!r} in command")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        pos = match.end()


def _parse_list(
    items: list[tuple[str, Any]], index: int, scope: list[str]
) -> tuple[list[Node], int, tuple[str, list[tuple[str, str]]] | None]:
    """Parse nodes until end/else; returns them, the next index, and the stopper.

    `scope` holds the variables declared so far; declarations extend it.
    """
    nodes: list[Node] = []
    while index < len(items):
        kind, payload = items[index]
        index += 1
        if kind == "text":
            if payload:
                nodes.append(payload)
            continue
        tokens: list[tuple[str, str]] = payload
        if not tokens:
            raise TemplateError("missing value for command")
        word = tokens[0][1] if tokens[0][0] == "ident" else ""
        if word in ("end", "else"):
            return nodes, index, (word, tokens[1:])
        if word in ("range", "if", "with"):
            node, index = _parse_block(word, tokens[1:], items, index, scope)
            nodes.append(node)
            continue
        if word in ("define", "template", "block", "break", "continue"):
            raise TemplateError(f"{{{{{word}}}}} is not supported by fleetcompat")
        nodes.append(("print", _parse_pipeline(tokens, "command", scope)))
    return nodes, index, None


def _parse_block(
    word: str,
    tokens: list[tuple[str, str]],
    items: list[tuple[str, Any]],
    index: int,
    scope: list[str],
) -> tuple[Node, int]:
    """A range/if/with block with its optional else (or else-if chain).

    Variables declared in the block's pipeline or body go out of scope at its end.
    """
    mark = len(scope)
    pipeline = _parse_pipeline(tokens, word, scope)
    body, index, stop = _parse_list(items, index, scope)
    if stop is None:
        raise TemplateError(f"unexpected EOF in {word}")

    otherwise: list[Node] = []
    chained = stop[1][:1] == [("ident", "if")] or (
        word == "with" and stop[1][:1] == [("ident", "with")]
    )
    if stop[0] == "else" and chained:
        nested, index = _parse_block(stop[1][0][1], stop[1][1:], items, index, scope)
        otherwise = [nested]
    elif stop[0] == "else":
        if stop[1]:
            raise TemplateError("unexpected tokens after else")
        otherwise, index, stop = _parse_list(items, index, scope)
        if stop is None or stop[0] != "end":
            raise TemplateError(f"expected end for {word}")
    if stop[0] == "end" and stop[1]:
        raise TemplateError("unexpected tokens after end")

    del scope[mark:]
    return (word, pipeline, body, otherwise), index


@dataclass(frozen=True)
class _Pipeline:
    """A pipeline: its commands, and the variables it declares or assigns."""

    commands: list[list[Node]]
    names: tuple[str, ...] = ()
    assign: bool = False


def _parse_pipeline(
    tokens: list[tuple[str, str]], context: str, scope: list[str]
) -> _Pipeline:
    """Declarations, then commands separated by `|` (each a list of operands)."""
    names, assign, tokens = _declarations(tokens, context)
    scope.extend(names)

    commands: list[list[Node]] = [[]]
    stack = [commands]
    for kind, text in tokens:
        current = stack[-1]
        if kind == "punct" and text == "|":
            current.append([])
        elif kind == "punct" and text == "(":
            inner: list[list[Node]] = [[]]
            current[-1].append(("pipe", inner))
            stack.append(inner)
        elif kind == "punct" and text == ")":
            if len(stack) == 1:
                raise TemplateError("unexpected right paren")
            stack.pop()
        elif kind == "punct":
            raise TemplateError(f"unexpected {text!r} in {context}")
        else:
            current[-1].append(_operand(kind, text, scope))
    if len(stack) != 1:
        raise TemplateError("unclosed left paren")
    if any(not command for command in commands):
        raise TemplateError(f"missing value for {context}")
    return _Pipeline(commands, names, assign)


def _declarations(
    tokens: list[tuple[str, str]], context: str
) -> tuple[tuple[str, ...], bool, list[tuple[str, str]]]:
    """Split `$x :=`, `$x =` or (range only) `$i, $e :=` off a pipeline's front.

    Returns the names, whether they are assigned rather than declared, and the
    remaining tokens.
    """
    names: list[str] = []
    rest = tokens
    while (
        len(rest) >= 2
        and rest[0][0] == "var"
        and "." not in rest[0][1]
        and rest[1] in (("punct", ":="), ("punct", "="), ("punct", ","))
    ):
        names.append(rest[0][1])
        separator = rest[1][1]
        rest = rest[2:]
        if separator != ",":
            return tuple(names), separator == "=", rest
        if context != "range" or len(names) > 1:
            raise TemplateError(f"too many declarations in {context}")
    if names:
        raise TemplateError("range can only initialize variables")
    return (), False, tokens


def _operand(kind: str, text: str, scope: list[str]) -> Node:
    """One token as a tree node."""
    if kind == "field":
        return ("field", tuple(text[1:].split(".")))
    if kind == "dot":
        return ("field", ())
    if kind == "var":
        name, *fields = text.split(".")
        if name not in scope:
            raise TemplateError(f'undefined variable "{name}"')
        return ("var", name, tuple(fields))
    if kind == "string":
        return ("const", json.loads(text))
    if kind == "raw":
        return ("const", text[1:-1])
    if kind == "number":
        try:
            return ("const", int(text, 0))
        except ValueError:
            raise TemplateError(f"number {text} is not supported") from None
    if kind == "ident":
        if text in ("true", "false"):
            return ("const", text == "true")
        if text == "nil":
            return ("const", None)
        if text not in FUNCTIONS:
            raise TemplateError(
                f'function "{text}" not defined or not supported by fleetcompat'
            )
        return ("func", text)
    raise TemplateError(f"{text} is not supported by fleetcompat")


class _Variables:
    """Go's variable stack while a template runs: `$` first, the innermost last."""

    def __init__(self, root: Value) -> None:
        self.stack: list[list[Any]] = [["$", root]]

    def mark(self) -> int:
        """The stack's height, to pop back to when a scope ends."""
        return len(self.stack)

    def pop(self, mark: int) -> None:
        """Forget the variables declared since `mark`."""
        del self.stack[mark:]

    def push(self, name: str, value: Value) -> None:
        """Declare a variable (`:=`), shadowing any of the same name."""
        self.stack.append([name, value])

    def set(self, name: str, value: Value) -> None:
        """Assign the innermost variable of that name (`=`)."""
        self._slot(name)[1] = value

    def set_top(self, depth: int, value: Value) -> None:
        """Overwrite the variable `depth` places from the top (range bindings)."""
        self.stack[-depth][1] = value

    def get(self, name: str) -> Value:
        """The value of the innermost variable of that name."""
        return self._slot(name)[1]

    def _slot(self, name: str) -> list[Any]:
        slot: list[Any]
        for slot in reversed(self.stack):
            if slot[0] == name:
                return slot
        raise TemplateError(f"undefined variable: {name}")


def _run(
    nodes: tuple[Node, ...] | list[Node],
    dot: Value,
    out: list[str],
    variables: _Variables,
) -> None:
    """Execute nodes with `dot` as the current value, appending output."""
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
            continue
        kind = node[0]
        if kind == "print":
            value = _pipeline(node[1], dot, variables)
            if not node[1].names:
                out.append(format_value(value))
            continue

        mark = variables.mark()
        _, pipeline, body, otherwise = node
        value = _pipeline(pipeline, dot, variables)
        if kind == "range":
            _run_range(pipeline, value, body, otherwise, dot, out, variables)
        elif truth(value):
            _run(body, value if kind == "with" else dot, out, variables)
        else:
            _run(otherwise, dot, out, variables)
        variables.pop(mark)


def _run_range(
    pipeline: _Pipeline,
    value: Value,
    body: list[Node],
    otherwise: list[Node],
    dot: Value,
    out: list[str],
    variables: _Variables,
) -> None:
    """The body once per element, binding the range's variables as Go does."""
    pairs = _range_items(value, len(pipeline.names))
    mark = variables.mark()
    for key, element in pairs:
        names = pipeline.names
        if pipeline.assign:
            variables.set(names[0], key if len(names) == 2 else element)
            if len(names) == 2:
                variables.set(names[1], element)
        elif names:
            variables.set_top(1, element)
            if len(names) == 2:
                variables.set_top(2, key)
        _run(body, element, out, variables)
        variables.pop(mark)
    if not pairs:
        _run(otherwise, dot, out, variables)


def _pipeline(pipeline: _Pipeline, dot: Value, variables: _Variables) -> Value:
    """A pipeline's value; its variables are declared or assigned that value."""
    result = _commands(pipeline.commands, dot, variables)
    for name in pipeline.names:
        if pipeline.assign:
            variables.set(name, result)
        else:
            variables.push(name, result)
    return result


def _commands(commands: list[list[Node]], dot: Value, variables: _Variables) -> Value:
    """Run commands left to right, each result passed as the next one's last arg."""
    result: Value = _MISSING
    for command in commands:
        head, args = command[0], command[1:]
        if head[0] == "func":
            values = [_operand_value(arg, dot, variables) for arg in args]
            if result is not _MISSING:
                values.append(result)
            result = FUNCTIONS[head[1]](*values)
            continue
        if args or result is not _MISSING:
            raise TemplateError("can't give argument to non-function")
        result = _operand_value(head, dot, variables)
    return result


def _operand_value(node: Node, dot: Value, variables: _Variables) -> Value:
    kind = node[0]
    if kind == "const":
        return node[1]
    if kind == "pipe":
        return _commands(node[1], dot, variables)
    if kind == "field":
        return _field(dot, node[1])
    if kind == "var":
        return _field(variables.get(node[1]), node[2])
    raise TemplateError(f'function "{node[1]}" used as an argument needs parentheses')


def _field(value: Value, names: tuple[str, ...]) -> Value:
    """Walk `.a.b` through maps, as Go does with missingkey=error."""
    for name in names:
        if isinstance(value, dict):
            if name not in value:
                raise TemplateError(f'map has no entry for key "{name}"')
            value = value[name]
        elif value is None:
            raise TemplateError(f"nil pointer evaluating .{name}")
        else:
            raise TemplateError(f"can't evaluate field {name} in {type_name(value)}")
    return value


def _range_items(value: Value, names: int) -> list[tuple[Value, Value]]:
    """(index or key, element) pairs: lists in order, maps by key, ints counted."""
    if value is None:
        return []
    if isinstance(value, list):
        return list(enumerate(value))
    if isinstance(value, dict):
        return [(key, value[key]) for key in sorted(value)]
    if isinstance(value, int) and not isinstance(value, bool):
        if names > 1:
            raise TemplateError(
                f"can't use {value} to iterate over more than one variable"
            )
        return [(i, i) for i in range(value)]
    raise TemplateError(f"range can't iterate over {format_value(value)}")


_MISSING = object()
"""No value yet: the first command of a pipeline gets no piped argument."""
