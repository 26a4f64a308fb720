"""Where the tables shipped with the package live, installed or in a source checkout."""

from __future__ import annotations

from pathlib import Path

from nnunetv2_malenia.errors import MaleniaError

DEFAULT_VOCABULARY = "vocabulary"
DEFAULT_KNOWLEDGE_TABLE = "clinical_knowledge_table"


def builtin_tables_dir() -> Path:
    """`attribute_tables/` is installed as the data package `nnunetv2_malenia.attribute_tables`."""
    installed = Path(__file__).resolve().parents[1] / "attribute_tables"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[2] / "attribute_tables"


def resolve_table(name_or_path: str | Path) -> Path:
    """A path to a table file, or the stem of a shipped table (e.g. `clinical_knowledge_table`)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = builtin_tables_dir() / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in builtin_tables_dir().glob("*.yaml"))
    raise MaleniaError(f"{name_or_path}: no such table file, and not a shipped table ({', '.join(names)})")
