"""Cache folder and the weights hash, shared by the tower and the embedding bank.

Why a hash cache: the tower identity (and so every cache lookup) needs the SHA-256 of the
weights; hashing a CLIP checkpoint takes seconds, so the digest is remembered per
(path, size, mtime) and a cache hit stays instant.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from nnunetv2_malenia._atomic import atomic_write

CACHE_ENV = "MALENIA_CACHE"
HASH_CACHE_FILE = "weights_sha256.json"

_memo: dict[tuple[str, int, int], str] = {}


def default_cache_dir() -> Path:
    """`$MALENIA_CACHE/text_embeddings` if MALENIA_CACHE is set, else ~/.cache/nnunetv2_malenia/text_embeddings."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / "text_embeddings"
    return Path.home() / ".cache" / "nnunetv2_malenia" / "text_embeddings"


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def sha256_file(path: Path, cache_dir: Path | None = None) -> str:
    """SHA-256 of a file, remembered in memory and in `cache_dir/weights_sha256.json` by path+size+mtime."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _memo:
        return _memo[key]
    table_file = cache_dir / HASH_CACHE_FILE if cache_dir is not None else None
    table = _read_hash_table(table_file)
    entry = table.get(str(path))
    if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        _memo[key] = entry["sha256"]
        return entry["sha256"]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    _memo[key] = digest.hexdigest()
    if table_file is not None:
        table = _read_hash_table(table_file)  # re-read: another process may have added entries
        table = {p: e for p, e in table.items() if Path(p).exists()}  # forget deleted files
        table[str(path)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": _memo[key]}
        atomic_write(table_file, lambda tmp: tmp.write_text(json.dumps(table, indent=1, sort_keys=True)))
    return _memo[key]


def _read_hash_table(table_file: Path | None) -> dict:
    if table_file is None or not table_file.is_file():
        return {}
    try:
        table = json.loads(table_file.read_text())
    except (OSError, ValueError):
        return {}  # a damaged hash cache only costs a re-hash
    return table if isinstance(table, dict) else {}


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def slug(text: str) -> str:
    """A file-name-safe form of a tower or vocabulary name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "tower"
