"""Weights hashes are remembered by path+size+mtime."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from nnunetv2_malenia.text import files
from nnunetv2_malenia.text.files import HASH_CACHE_FILE, sha256_file


def test_hash_is_remembered_and_refreshed_when_the_file_changes(tmp_path, monkeypatch):
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"first")
    assert sha256_file(weights, tmp_path) == hashlib.sha256(b"first").hexdigest()
    table = json.loads((tmp_path / HASH_CACHE_FILE).read_text())
    assert table[str(weights.resolve())]["size"] == 5

    monkeypatch.setattr(files, "_memo", {})  # a new process: only the JSON remains
    monkeypatch.setattr(hashlib, "sha256", lambda *a: pytest.fail("rehashed an unchanged file"))
    assert sha256_file(weights, tmp_path) == table[str(weights.resolve())]["sha256"]
    monkeypatch.undo()

    weights.write_bytes(b"second, longer")
    os.utime(weights, ns=(1, 1))
    assert sha256_file(weights, tmp_path) == hashlib.sha256(b"second, longer").hexdigest()
