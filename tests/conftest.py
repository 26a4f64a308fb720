"""Shared fixtures: paths to the shipped tables and the released workbook, a CLI runner."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TABLES = REPO / "attribute_tables"
WORKBOOK_EN = REPO / "tests" / "data" / "malenia_annotations" / "annotations_of_lesion_descriptions_en.xlsx"
WORKBOOK_ZH = REPO / "tests" / "data" / "malenia_annotations" / "annotations_of_lesion_descriptions_zh.xlsx"


def run_malenia(*args: str, cwd: Path | None = None, env: dict | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed `malenia` command as a user would; falls back to `python -m` in a source tree."""
    exe = shutil.which("malenia")
    command = [exe, *args] if exe else [sys.executable, "-m", "nnunetv2_malenia.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


@pytest.fixture
def tables_copy(tmp_path: Path) -> Path:
    """A writable copy of attribute_tables/ to plant mistakes in."""
    target = tmp_path / "tables"
    shutil.copytree(TABLES, target)
    return target
