"""Render the subset of Go's text/template that Nomad credential templates use.

Supported: text, `{{- ... -}}` whitespace trimming, comments, `with`/`if` with
`else` and `end`, field access (`.password`, `.Parent.Items.password`,
`.Parent.Path`), string literals, and the functions `nomadVar` and `env`.
As in consul-template, `nomadVar` returns the item map itself, so `.Items`
is a map key like any other and not a field. Any other function or action
raises TemplateError with the message Go's parser gives, so the allocation
fails the way a real client fails on a template it cannot parse.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NO_VALUE = "<no value>"


class TemplateError(Exception):
    """A template that cannot be parsed or executed."""


class MissingData(Exception):
    """A dependency (such as a Nomad variable) that does not exist yet."""

    def __init__(self, dependency: str) -> None:
        super().__init__(dependency)
        self.dependency = dependency


@dataclass
class Node:
    """One parsed element: text, an output action or a with/if block."""

    kind: str  # text, output, with, if
    value: str = ""
    body: list[Node] = field(default_factory=list)
    otherwise: list[Node] = field(default_factory=list)


def _tokenize(source: str, left: str, right: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while True:
        start = source.find(left, position)
        if start < 0:
            tokens.append(("text", source[position:]))
            return tokens
        end = source.find(right, start + len(left))
        if end < 0:
            raise TemplateError("template: unclosed action")
        text = source[position:start]
        action = source[start + len(left) : end]
        if action.startswith("- "):
            text = text.rstrip()
            action = action[2:]
        position = end + len(right)
        if action.endswith(" -"):
            action = action[:-2]
            rest = source[position:]
            position += len(rest) - len(rest.lstrip())
        tokens.append(("text", text))
        tokens.append(("action", action.strip()))


def parse(source: str, left: str = "{{", right: str = "}}") -> list[Node]:
    """Parse a template into nodes; raise TemplateError on anything outside the subset."""
    stack: list[tuple[Node, list[Node]]] = []
    root: list[Node] = []
    current = root
    for kind, value in _tokenize(source, left, right):
        if kind == "text":
            if value:
                current.append(Node("text", value))
            continue
        if value.startswith("/*") and value.endswith("*/"):
            continue
        keyword, _, rest = value.partition(" ")
        if keyword in {"with", "if"}:
            node = Node(keyword, rest.strip())
            current.append(node)
            stack.append((node, current))
            current = node.body
        elif keyword == "else":
            if not stack:
                raise TemplateError("template: unexpected {{else}}")
            current = stack[-1][0].otherwise
        elif keyword == "end":
            if not stack:
                raise TemplateError("template: unexpected {{end}}")
            _, current = stack.pop()
        elif keyword in {"range", "define", "template", "block"}:
            raise TemplateError(f'template: action "{keyword}" is not supported by the Nomad double')
        else:
            _check_pipeline(value)
            current.append(Node("output", value))
    if stack:
        raise TemplateError("template: unexpected EOF")
    return root


FUNCTIONS = frozenset({"nomadVar", "env"})


def _check_pipeline(pipeline: str) -> None:
    words = _split(pipeline)
    if not words:
        raise TemplateError("template: missing value for command")
    head = words[0]
    if head.startswith((".", '"', "$")):
        return
    if head not in FUNCTIONS:
        raise TemplateError(f'template: function "{head}" not defined')


def _split(pipeline: str) -> list[str]:
    if "|" in pipeline:
        raise TemplateError("template: pipelines with | are not supported by the Nomad double")
    try:
        return shlex.split(pipeline, posix=False)
    except ValueError as error:
        raise TemplateError(f"template: {error}") from None


@dataclass
class Context:
    """What a template can reach: Nomad variables and the task environment."""

    read_variable: Callable[[str], dict[str, str] | None]
    env: dict[str, str]
    error_on_missing_key: bool = False


def _literal(word: str) -> str:
    if word.startswith('"') and word.endswith('"'):
        return word[1:-1].encode().decode("unicode_escape")
    raise TemplateError(f"template: expected a string argument, found {word}")


def _field(dot: Any, path: str, context: Context) -> Any:
    value = dot
    for part in [piece for piece in path.split(".") if piece]:
        if isinstance(value, VariableItems) and part == "Parent":
            value = {"Items": value.items, "Path": value.path, "Namespace": "default"}
            continue
        mapping = value.items if isinstance(value, VariableItems) else value
        if not isinstance(mapping, dict):
            raise TemplateError(f"template: can't evaluate field {part} in type {type(value)}")
        if part not in mapping:
            if context.error_on_missing_key:
                raise TemplateError(f'template: map has no entry for key "{part}"')
            return NO_VALUE
        value = mapping[part]
    return value


@dataclass
class VariableItems:
    """The value `nomadVar` returns: the items of one variable, reachable as fields."""

    path: str
    items: dict[str, str]

    def __str__(self) -> str:
        pairs = " ".join(f"{key}:{value}" for key, value in sorted(self.items.items()))
        return f"map[{pairs}]"


def _evaluate(pipeline: str, dot: Any, context: Context) -> Any:
    words = _split(pipeline)
    head, args = words[0], words[1:]
    if head.startswith("."):
        return _field(dot, head, context)
    if head.startswith('"'):
        return _literal(head)
    if head == "nomadVar":
        if len(args) != 1:
            raise TemplateError("template: wrong number of args for nomadVar: want 1")
        path = _literal(args[0])
        items = context.read_variable(path)
        if items is None:
            raise MissingData(f"nomad.var.block({path}@default.global)")
        return VariableItems(path, items)
    if head == "env":
        return context.env.get(_literal(args[0]), "")
    raise TemplateError(f'template: function "{head}" not defined')


def _truthy(value: Any) -> bool:
    if isinstance(value, VariableItems):
        return bool(value.items)
    return bool(value) and value != NO_VALUE


def _render_nodes(nodes: list[Node], dot: Any, context: Context, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.value)
        elif node.kind == "output":
            out.append(str(_evaluate(node.value, dot, context)))
        else:
            value = _evaluate(node.value, dot, context)
            if _truthy(value):
                _render_nodes(node.body, value if node.kind == "with" else dot, context, out)
            else:
                _render_nodes(node.otherwise, dot, context, out)


def render(source: str, context: Context, left: str = "{{", right: str = "}}") -> str:
    """Render `source`; raise TemplateError or MissingData when it cannot be rendered yet."""
    nodes = parse(source, left or "{{", right or "}}")
    out: list[str] = []
    _render_nodes(nodes, None, context, out)
    return "".join(out)


def referenced_variables(source: str) -> list[str]:
    """List the variable paths a template reads with `nomadVar "<path>"`."""
    return re.findall(r'nomadVar\s+"([^"]*)"', source)
