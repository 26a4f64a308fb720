"""Write files so a reader never sees half of one: write beside the target, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; it replaces the target only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file, then move it onto `target`."""
    with atomic_path(target) as tmp:
        write(tmp)
    return Path(target)


def write_json_atomic(target: str | Path, data: Any) -> None:
    atomic_write(target, lambda tmp: tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_json_file(path: str | Path, missing: str, unreadable_fix: str = "") -> Any:
    """The JSON content of `path`, or a MaleniaError naming the file: "PATH: MISSING" when it does
    not exist, "PATH: not a readable JSON file (why)[; UNREADABLE_FIX]" when it cannot be parsed."""
    from nnunetv2_malenia.errors import MaleniaError

    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MaleniaError(f"{path}: {missing}") from None
    except (OSError, ValueError) as e:
        raise MaleniaError(f"{path}: not a readable JSON file ({e})" + (f"; {unreadable_fix}" if unreadable_fix else "")) from None
