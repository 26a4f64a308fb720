"""Reading the human-edited YAML tables with errors that name the file and what to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nnunetv2_malenia.errors import TableError

SCHEMA_VERSION = 1


def read_yaml_document(path: str | Path, expected_kind: str | None = None) -> dict[str, Any]:
    """Load one YAML mapping and check its `kind` and `schema_version` header."""
    path = Path(path)
    if not path.is_file():
        raise TableError(path, "no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise TableError(path, f"malformed YAML{line}: {problem}") from None
    except UnicodeDecodeError:
        raise TableError(path, "not a UTF-8 text file") from None
    if not isinstance(data, dict):
        raise TableError(path, "expected a YAML mapping with a 'kind' field at the top level")
    kind = data.get("kind")
    if expected_kind is not None and kind != expected_kind:
        raise TableError(path, f"expected kind: {expected_kind}, found {kind!r}", field="kind")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise TableError(path, f"unsupported schema_version {version!r}; this version of nnunetv2-malenia reads {SCHEMA_VERSION}",
                         field="schema_version")
    return data


def require(mapping: Any, key: str, kind: type | tuple[type, ...], file: Path, row: str | None = None) -> Any:
    """Return mapping[key] if present and of the right type, else a TableError naming it."""
    if not isinstance(mapping, dict):
        raise TableError(file, "expected a mapping", row=row)
    if key not in mapping or mapping[key] is None:
        raise TableError(file, "missing", row=row, field=key)
    value = mapping[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise TableError(file, f"expected {names}, found {type(value).__name__}", row=row, field=key)
    return value


def check_known_keys(mapping: dict, allowed: set[str], file: Path, row: str | None = None) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise TableError(file, f"unknown field; allowed: {', '.join(sorted(allowed))}", row=row, field=unknown[0])
