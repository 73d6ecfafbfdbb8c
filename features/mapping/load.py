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
    """An error location as a key path of the document: steps the document does not have
    (a union member's name, the part name of a table given as one map) are left out."""
    out: list[str] = []
    here = data
    for n, step in enumerate(loc):
        key = str(step)
        rest = [str(s) for s in loc[n + 1:]]
        if isinstance(here, dict):
            if key in here:
                out.append(key)
                here = here[key]
            elif (rest and rest[0] in here) or (out and key == out[-1]):
                continue  # a wrapper the schema added (a table's one map, named after it)
            else:
                out.append(key)  # absent: a missing key, or one the schema does not know
                here = None
        elif isinstance(here, list) and isinstance(step, int) and step < len(here):
            out.append(key)
            here = here[step]
        elif here is None:
            out.append(key)
    return tuple(out)


def _message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key missing"
    msg = str(err.get("msg", "invalid"))
    return msg.removeprefix("Value error, ")


def _in_order(problems: list[str]) -> list[str]:
    """Each problem once, by file and line."""

    def key(p: str) -> tuple[str, int]:
        where = p.split(": ", 1)[0]
        origin, _, line = where.rpartition(":")
        return (origin, int(line)) if line.isdigit() else (where, 0)

    return sorted(dict.fromkeys(problems), key=key)


MAX_BASES = 8
"""How many mapping files may stand on one another (a loop is an error, not a hang)."""


def with_base(doc: Document, seen: tuple[str, ...] = ()) -> Document:
    """``doc`` laid on what its ``preset:`` names: a shipped preset, or another mapping
    file (a path ending in ``.yaml`` or ``.yml``, relative to this file's folder), itself
    laid on its own ``preset:``. So one export's variant (more columns allowed, say) is a
    short file that names the mapping it changes."""
    preset = doc.data.get("preset")
    if preset is None:
        return doc
    if isinstance(preset, str) and preset in PRESETS:
        return merge(preset_document(preset), doc)
    if not isinstance(preset, str) or not preset.endswith((".yaml", ".yml")):
        raise MappingError([doc.problem(("preset",), f"unknown preset {preset!r}; use one "
                                        f"of {', '.join(PRESETS)} or a mapping file's path "
                                        "(.yaml)")])
    path = Path(doc.name).parent / preset
    seen = (*seen, str(Path(doc.name).resolve()))
    if str(path.resolve()) in seen or len(seen) > MAX_BASES:
        raise MappingError([doc.problem(("preset",), f"{preset} leads back to a mapping "
                                        "already read: the presets form a loop")])
    if not path.exists():
        raise MappingError([doc.problem(("preset",), f"no mapping file {preset} beside this "
                                        "one")])
    base = with_base(read_document(path), seen)
    return merge(base, doc)


def mapping_from_document(doc: Document) -> Mapping:
    """Merge the preset the document names, then validate: ``MappingError`` lists every
    problem with its key and line."""
    doc = with_base(doc)
    try:
        mapping = Mapping.model_validate(doc.data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = _path_in(doc.data, tuple(err["loc"]))
            problems.append(doc.problem(path, _message(dict(err))))
        raise MappingError(_in_order(problems)) from None
    refs = check_references(mapping)
    if refs:
        raise MappingError(_in_order(
            [doc.problem(_path_in(doc.data, path), msg) for path, msg in refs]))
    return mapping


def load_mapping(path: Path) -> Mapping:
    """The mapping in ``path``, its preset merged under it and checked; a preset's name
    where no such file exists is that preset as shipped."""
    if not Path(path).exists() and str(path) in PRESETS:
        return mapping_from_document(preset_document(str(path)))
    return mapping_from_document(read_document(Path(path)))
