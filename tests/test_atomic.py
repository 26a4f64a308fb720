"""Atomic writes: a failed write leaves the old file and no temporary behind."""

import pytest

from nnunetv2_malenia import _atomic
from nnunetv2_malenia._atomic import atomic_write


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "bank.pt"
    target.write_text("old")

    def failing(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["bank.pt"]
    atomic_write(target, lambda tmp: tmp.write_text("new"))
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o666 & ~_atomic._umask()  # not mkstemp's 0600
