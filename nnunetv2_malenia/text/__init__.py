"""Frozen text tower and the embedding bank of attribute value phrases.

    spec.py            the `--tower` string: which weights (parsed without touching files)
    sources.py         spec -> local files + open_clip text config + identity (nothing built)
    tower.py           builds the open_clip text tower offline, frozen; `encode(phrases)`
    embedding_bank.py  one vector per phrase, cached per (tower identity, phrase); the bank file
    files.py           cache folder, remembered weight hashes

The names below load lazily so importing this package stays free of torch and open_clip.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TextTowerSpec": "spec", "parse_tower_spec": "spec",
    "TowerSource": "sources", "resolve_tower_source": "sources",
    "FrozenTextTower": "tower", "load_text_tower": "tower", "tower_identity": "tower",
    "EmbeddingBank": "embedding_bank", "EmbeddingCache": "embedding_bank", "embed_vocabulary": "embedding_bank",
    "embed_phrases": "embedding_bank",
    "default_cache_dir": "files",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
