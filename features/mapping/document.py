"""A mapping file as data, with the line of every key, and a preset merged under it.

The YAML is composed into nodes (which keep their marks) and built into plain Python by
hand, so that each key path knows its line: a schema error then names the key and the line
it is on. Mapping keys are kept as written (``Yes:`` stays the text ``Yes``, not a
boolean), which is what a value map from an export's text needs; scalar values are read as
YAML reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

Path_ = tuple[str, ...]


class MappingError(ValueError):
    """A mapping file that cannot be used; each problem names its key and line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class Document:
    """A mapping's data and, for every key path, where it was written."""

    data: dict[str, Any]
    lines: dict[Path_, str] = field(default_factory=dict)  # path -> "file:line"
    name: str = "mapping"

    def where(self, path: Path_) -> str:
        """``file:line`` of the longest prefix of ``path`` that was written somewhere."""
        for end in range(len(path), -1, -1):
            hit = self.lines.get(tuple(path[:end]))
            if hit is not None:
                return hit
        return self.name

    def problem(self, path: Path_, message: str) -> str:
        key = ".".join(path) if path else "(top level)"
        return f"{self.where(path)}: {key}: {message}"


def _build(node: yaml.Node, path: Path_, origin: str, lines: dict[Path_, str]) -> Any:
    lines.setdefault(path, f"{origin}:{node.start_mark.line + 1}")
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        problems = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(f"{origin}:{key_node.start_mark.line + 1}: a key must be text")
                continue
            key = str(key_node.value)
            if key in out:
                problems.append(
                    f"{origin}:{key_node.start_mark.line + 1}: "
                    f"{'.'.join((*path, key))}: written twice"
                )
                continue
            lines[(*path, key)] = f"{origin}:{key_node.start_mark.line + 1}"
            out[key] = _build(value_node, (*path, key), origin, lines)
        if problems:
            raise MappingError(problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(v, (*path, str(i)), origin, lines) for i, v in enumerate(node.value)]
    return SafeConstructor().construct_object(node)


def parse_document(text: str, origin: str) -> Document:
    """Parse YAML text into a ``Document``; a syntax error names its line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise MappingError([f"{origin}{line}: not valid YAML: {exc}"]) from None
    if node is None:
        return Document({}, {(): f"{origin}:1"}, origin)
    lines: dict[Path_, str] = {}
    data = _build(node, (), origin, lines)
    if not isinstance(data, dict):
        raise MappingError([f"{origin}:1: a mapping file holds keys, not {type(data).__name__}"])
    return Document(data, lines, origin)


def read_document(path: Path) -> Document:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError([f"{path}: cannot be read: {exc.strerror or exc}"]) from None
    return parse_document(text, str(path))


FIELD_KEYS = frozenset({"status", "status_at", "stage"})
"""Keys, besides those under ``fields:``, that hold one field's map."""
ORIGINS = ("column", "value", "sequence", "row_id")
"""Where a field's value comes from: one of these per field."""


def merge(base: Document, over: Document) -> Document:
    """``over`` laid on ``base``: keys merge at every level (so a value map gains or
    changes entries), except that a field whose origin ``over`` gives (``column``,
    ``value``, ``sequence``, ``row_id``) loses the preset's other origin: writing
    ``column:`` where the preset had ``value:`` means what it says. A key set to null in
    ``over`` removes the preset's entry (a column, a file or a whole value map the export
    does not need).
    """

    def walk(a: Any, b: Any, parent: str) -> Any:
        if isinstance(a, dict) and isinstance(b, dict):
            out = dict(a)
            for k, v in b.items():
                if v is None:
                    out.pop(k, None)
                    continue
                merged = walk(a.get(k), v, k)
                is_field = parent == "fields" or k in FIELD_KEYS
                if is_field and isinstance(merged, dict) and isinstance(v, dict):
                    given = [o for o in ORIGINS if o in v]
                    if given:
                        merged = {x: y for x, y in merged.items()
                                  if x not in ORIGINS or x in given}
                out[k] = merged
            return out
        return b

    lines = dict(base.lines)
    lines.update(over.lines)  # the user's line wins where both wrote a key
    return Document(walk(base.data, over.data, ""), lines, over.name)
