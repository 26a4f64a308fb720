"""Case-level diagnosis: how well a per-case score tells which cases hold a disease (AUROC).

A case is positive for a disease when its ground-truth label map holds that disease's label.
Scores: a Malenia model's `case_scores` (CASE.lesions.json: per table row, the strongest token's
objectness x p(disease | token), seen and unseen rows alike); for any other model, as a baseline,
the predicted volume of the disease's label. AUROC is scikit-learn's roc_auc_score; a disease with
only positive or only negative cases has none (NaN).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def labels_present(folder: Path, names_of: Mapping[int, str], ending: str = ".nii.gz") -> dict[str, set[str]]:
    """Per case of a label-map folder, the names of the labels it holds."""
    import SimpleITK as sitk

    present = {}
    for path in sorted(folder.glob(f"*{ending}")):
        values = np.unique(sitk.GetArrayViewFromImage(sitk.ReadImage(str(path))))
        present[path.name[: -len(ending)]] = {names_of[int(v)] for v in values if int(v) in names_of}
    return present


def label_volumes(folder: Path, labels: Mapping[str, int], ending: str = ".nii.gz") -> dict[str, dict[str, float]]:
    """Per case, the predicted volume (ml) of each named label: the baseline presence score."""
    import SimpleITK as sitk

    volumes = {}
    for path in sorted(folder.glob(f"*{ending}")):
        image = sitk.ReadImage(str(path))
        array = sitk.GetArrayViewFromImage(image)
        voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
        counts = np.bincount(array.ravel().astype(np.int64), minlength=max(labels.values(), default=0) + 1)
        volumes[path.name[: -len(ending)]] = {name: float(counts[value]) * voxel_ml if value < len(counts) else 0.0
                                              for name, value in labels.items()}
    return volumes


def report_scores(folder: Path) -> dict[str, dict[str, float]]:
    """Per case, the `case_scores` of its CASE.lesions.json (written by `malenia predict`)."""
    return {p.name[: -len(".lesions.json")]: json.loads(p.read_text()).get("case_scores", {})
            for p in sorted(folder.glob("*.lesions.json"))}


def presence_auroc(scores: Mapping[str, Mapping[str, float]], truth: Mapping[str, set[str]],
                   diseases: Sequence[str]) -> dict[str, float]:
    """Per disease, the AUROC of `scores` over the cases in `truth` (a missing score counts 0)."""
    from sklearn.metrics import roc_auc_score

    cases = sorted(truth)
    out = {}
    for disease in diseases:
        positive = [disease in truth[c] for c in cases]
        if all(positive) or not any(positive):
            out[disease] = math.nan
            continue
        out[disease] = float(roc_auc_score(positive, [float(scores.get(c, {}).get(disease, 0.0)) for c in cases]))
    return out
