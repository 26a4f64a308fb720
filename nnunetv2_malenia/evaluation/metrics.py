"""Per-case DSC and NSD (normalized surface Dice) with the empty-mask conventions.

NSD is MONAI's `compute_surface_dice(..., use_subvoxels=True)`: DeepMind's surface-distance
algorithm (Nikolov et al. 2021): surface elements ("surfels") on the voxel-corner grid found
from each 2x2x2 neighbourhood code, each weighted by its area in mm^2 for the given
(anisotropic) spacing, distances from a spacing-aware Euclidean distance transform. No second
implementation lives here; this module handles conventions, label selection and cropping.

Conventions (Metrics Reloaded, Maier-Hein et al., Nat. Methods 2024; its reference code
`BinaryPairwiseMeasures.dsc` returns 1 when reference and prediction are both empty):
  both empty              -> DSC = NSD = 1 (the correct answer; `both_empty=nan` excludes them)
  GT empty, prediction not -> 0 (every predicted voxel is a false positive)
  prediction empty, GT not -> 0 (the lesion was missed)
"""

from __future__ import annotations

import math
import warnings
from typing import Mapping, Sequence

import numpy as np

DEFAULT_TOLERANCE_MM = 2.0

#: values of the `empty` column: which convention produced a row's numbers ("" = both masks non-empty)
BOTH_EMPTY, GT_EMPTY, PRED_EMPTY = "both_empty", "gt_empty", "pred_empty"
EMPTY_KINDS = (BOTH_EMPTY, GT_EMPTY, PRED_EMPTY)


def empty_kind(gt: np.ndarray, pred: np.ndarray) -> str:
    """Which empty-mask convention applies to a binary pair: "" (none), BOTH_EMPTY, GT_EMPTY or PRED_EMPTY."""
    gt_any, pred_any = bool(np.any(gt)), bool(np.any(pred))
    if gt_any and pred_any:
        return ""
    if not gt_any and not pred_any:
        return BOTH_EMPTY
    return GT_EMPTY if not gt_any else PRED_EMPTY


def _convention(kind: str, both_empty: float) -> float | None:
    if kind == BOTH_EMPTY:
        return float(both_empty)
    if kind in (GT_EMPTY, PRED_EMPTY):
        return 0.0
    return None


def dsc(gt: np.ndarray, pred: np.ndarray, both_empty: float = 1.0) -> float:
    """Dice similarity coefficient 2|G&P| / (|G|+|P|) of two binary masks; both empty -> `both_empty`."""
    gt, pred = np.asarray(gt, dtype=bool), np.asarray(pred, dtype=bool)
    if gt.shape != pred.shape:
        raise ValueError(f"masks differ in shape: ground truth {gt.shape}, prediction {pred.shape}")
    total = int(np.count_nonzero(gt)) + int(np.count_nonzero(pred))
    if total == 0:
        return float(both_empty)
    return 2.0 * int(np.count_nonzero(gt & pred)) / total


def nsd(gt: np.ndarray, pred: np.ndarray, spacing: Sequence[float], tolerance_mm: float = DEFAULT_TOLERANCE_MM,
        both_empty: float = 1.0) -> float:
    """Normalized surface Dice of two binary masks at `tolerance_mm`.

    `spacing` is in mm per array axis, in the array's axis order (for a SimpleITK array, which is
    z, y, x, that is `image.GetSpacing()[::-1]`). Computed by MONAI's compute_surface_dice with
    use_subvoxels=True (DeepMind's algorithm); empty masks follow the module's conventions.
    """
    gt, pred = np.asarray(gt, dtype=bool), np.asarray(pred, dtype=bool)
    if gt.shape != pred.shape:
        raise ValueError(f"masks differ in shape: ground truth {gt.shape}, prediction {pred.shape}")
    if gt.ndim not in (2, 3) or len(spacing) != gt.ndim:
        raise ValueError(f"need 2D or 3D masks and one spacing per axis, got shape {gt.shape} and spacing {tuple(spacing)}")
    if not (math.isfinite(tolerance_mm) and tolerance_mm >= 0):
        raise ValueError(f"tolerance must be a finite number >= 0 mm, got {tolerance_mm}")
    fixed = _convention(empty_kind(gt, pred), both_empty)
    if fixed is not None:
        return fixed
    gt, pred = _crop_to_union(gt, pred)

    import torch
    from monai.metrics import compute_surface_dice

    with warnings.catch_warnings():
        # MONAI 1.5-1.6 passes a deprecated argument to its own get_mask_edges
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"monai\.")
        value = compute_surface_dice(torch.from_numpy(pred)[None, None], torch.from_numpy(gt)[None, None],
                                     class_thresholds=[float(tolerance_mm)], include_background=True,
                                     spacing=[float(s) for s in spacing], use_subvoxels=True)
    return float(value.reshape(-1)[0])


def _crop_to_union(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop both masks to their union's bounding box plus one background voxel on every side.

    The margin keeps every surface element and the distances between them unchanged; it only
    saves memory and time on large scans (MONAI crops as well, after a one-hot float copy).
    """
    union = gt | pred
    lo, hi = [], []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        idx = np.flatnonzero(union.any(axis=other))
        lo.append(int(idx[0]))
        hi.append(int(idx[-1]) + 1)
    shape = tuple(h - l + 2 for l, h in zip(lo, hi))
    inner = tuple(slice(l, h) for l, h in zip(lo, hi))
    out = []
    for mask in (gt, pred):
        padded = np.zeros(shape, dtype=bool)
        padded[tuple(slice(1, -1) for _ in shape)] = mask[inner]
        out.append(padded)
    return out[0], out[1]


def label_mask(label_map: np.ndarray, value: int | Sequence[int]) -> np.ndarray:
    """Binary mask of one label value, or of a region (a list of values, nnU-Net's region labels)."""
    if isinstance(value, (list, tuple)):
        return np.isin(label_map, np.asarray(value))
    return label_map == value


def evaluate_case(gt: np.ndarray, pred: np.ndarray, spacing: Sequence[float], labels: Mapping[str, int | Sequence[int]],
                  tolerance_mm: float = DEFAULT_TOLERANCE_MM, both_empty: float = 1.0,
                  case: str | None = None) -> list[dict]:
    """DSC and NSD of every label of one case: one dict per label, in `labels` order.

    `gt` and `pred` are integer label maps of the same shape, `spacing` is mm per array axis,
    `labels` maps a display name to a label value (or a list of values for a region). Each dict:
    case, label, value, dsc, nsd, gt_voxels, pred_voxels, empty ("" or one of EMPTY_KINDS).
    """
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"label maps differ in shape: ground truth {gt.shape}, prediction {pred.shape}")
    rows = []
    for name, value in labels.items():
        g, p = label_mask(gt, value), label_mask(pred, value)
        rows.append({
            "case": case, "label": str(name), "value": value,
            "dsc": dsc(g, p, both_empty), "nsd": nsd(g, p, spacing, tolerance_mm, both_empty),
            "gt_voxels": int(np.count_nonzero(g)), "pred_voxels": int(np.count_nonzero(p)),
            "empty": empty_kind(g, p),
        })
    return rows
