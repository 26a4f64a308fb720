"""The open-set rule's default: below which best row match a lesion is an "unknown lesion".

Kept in a module of its own, free of torch and nnU-Net imports, so `malenia predict --help` can
show it quickly. Off (0) by default: the threshold belongs to a model. On the CPU-trained models
measured first (docs/benchmarks.md, "Open set") the best row match did not separate lesions of rows
in the table from lesions whose disease was removed from it (AUROC 0.50-0.52), so any fixed value
relabels seen lesions at random. The zero-shot recipe's model is the first measured exception
(AUROC 0.83, best threshold 0.71, its reports read from the per-voxel readout), but not on
every draw: the same recipe on a second generator seed measured 0.75.

So a threshold is stored with the model it was measured on: `benchmarks/bench_open_set.py
--store` writes MODEL/open_set_threshold.json when the model's AUROC is at least
MIN_AUROC_FOR_DEFAULT, and `malenia predict` uses it unless `--unknown-threshold` says otherwise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from nnunetv2_malenia._atomic import write_json_atomic
from nnunetv2_malenia.errors import MaleniaError

OPEN_SET_THRESHOLD = 0.0
MODEL_THRESHOLD_FILE = "open_set_threshold.json"
MIN_AUROC_FOR_DEFAULT = 0.8


def store_model_threshold(model_dir: str | Path, threshold: float, auroc: float, measured_on: str) -> Path | None:
    """Write the threshold into the model folder when `auroc` reaches MIN_AUROC_FOR_DEFAULT (the
    file path), else leave the folder as it is (None): a threshold on a model whose best match
    does not separate known from unknown lesions would relabel at random."""
    if not (auroc >= MIN_AUROC_FOR_DEFAULT):
        return None
    path = Path(model_dir) / MODEL_THRESHOLD_FILE
    write_json_atomic(path, {"threshold": float(threshold), "auroc": float(auroc), "measured_on": measured_on})
    return path


def model_threshold(model_dir: str | Path) -> float | None:
    """The threshold stored with the model, or None without one."""
    path = Path(model_dir) / MODEL_THRESHOLD_FILE
    if not path.is_file():
        return None
    fix = "delete the file or measure again with benchmarks/bench_open_set.py --store"
    try:
        value = json.loads(path.read_text()).get("threshold")
    except (ValueError, AttributeError) as error:
        raise MaleniaError(f"{path}: not a JSON object with a 'threshold' ({error}); {fix}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value < 1.0:
        raise MaleniaError(f"{path}: 'threshold' must be a number in [0, 1), got {value!r}; {fix}")
    return float(value)


def resolve_unknown_threshold(option: float | None, model_dir: str | Path) -> tuple[float, str]:
    """(threshold, where it came from) for `malenia predict`: the option when given, else the
    model's stored threshold, else OPEN_SET_THRESHOLD."""
    if option is not None:
        return float(option), "--unknown-threshold"
    stored = model_threshold(model_dir)
    if stored is not None:
        return stored, str(Path(model_dir) / MODEL_THRESHOLD_FILE)
    return OPEN_SET_THRESHOLD, "default"
