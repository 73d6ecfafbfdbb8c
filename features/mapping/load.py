"""Read a mapping file, lay it over its preset, and check it against the schema.

Every problem is reported at once, each as ``file:line: key: message``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from features.mapping.document import Document, MappingError, merge, parse_document, read_document
from features.mapping.spec import Mapping, check_references

PRESETS: tuple[str, ...] = ("salesforce", "hubspot", "flat-leads", "flat-deals")
"""The presets shipped in ``features/mapping/presets/``, one YAML file each."""


def preset_document(name: str) -> Document:
    """A shipped preset, as a document whose lines point into the preset's file."""
    text = resources.files("features.mapping").joinpath("presets", f"{name}.yaml").read_text(
        encoding="utf-8"
    )
    return parse_document(text, f"preset {name}")


def preset_description(name: str) -> str:
    return str(preset_document(name).data.get("description", "")).strip()


def _path_in(data: Any, loc: tuple[int | str, ...]) -> tuple[str, ...]:
    """A pydantic error location as a key path of the document: steps the document does
    not have (a union's member name, a wrapper pydantic added) are left out."""
    out: list[str] = []
    here = data
    for step in loc:
        key = str(step)
        if isinstance(here, dict) and key in here:
            out.append(key)
            here = here[key]
        elif isinstance(here, list) and isinstance(step, int) and step < len(here):
            out.append(key)
            here = here[step]
        elif not isinstance(here, dict | list) or isinstance(step, int):
            continue
        else:
            out.append(key)  # a key that is absent: a missing one, or one too many
            here = None
    return tuple(out)


def _message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key missing"
    msg = str(err.get("msg", "invalid"))
    return msg.removeprefix("Value error, ")


def mapping_from_document(doc: Document) -> Mapping:
    """Merge the preset the document names, then validate: ``MappingError`` lists every
    problem with its key and line."""
    preset = doc.data.get("preset")
    if preset is not None:
        if not isinstance(preset, str) or preset not in PRESETS:
            raise MappingError([doc.problem(("preset",), f"unknown preset {preset!r}; "
                                            f"use one of {', '.join(PRESETS)}")])
        doc = merge(preset_document(preset), doc)
    try:
        mapping = Mapping.model_validate(doc.data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = _path_in(doc.data, tuple(err["loc"]))
            problems.append(doc.problem(path, _message(dict(err))))
        raise MappingError(sorted(set(problems), key=problems.index)) from None
    refs = check_references(mapping)
    if refs:
        raise MappingError([doc.problem(path, msg) for path, msg in refs])
    return mapping


def load_mapping(path: Path) -> Mapping:
    """The mapping in ``path``, its preset merged under it and checked."""
    return mapping_from_document(read_document(Path(path)))
