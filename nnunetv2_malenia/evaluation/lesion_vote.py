"""One disease per lesion: each connected lesion takes the disease label most of its voxels carry.

A voxel-wise softmax (nnU-Net's head) may split one lesion between two diseases of the same
organ: a lung tumour with a rim of "lung metastasis" voxels. Scored per case, those few voxels
are a false-positive lesion of the second disease in a case that has none, and its Dice for that
case is 0, however small they are (docs/benchmarks.md, CPU tier calibration: median 1-73 voxels,
in up to 25 of 40 test cases per class). A lesion has one disease, so `malenia benchmark` scores
every model, Malenia and nnU-Net alike, after this vote (`--voxelwise` scores the raw maps).

Lesions are the 26-connected components of the union of all lesion labels; organ labels and
background are never changed. Two lesions of different diseases that touch form one component
and take one label (the larger share).

`min_voxels` (optional, `malenia benchmark --min-lesion-ml`): a component smaller than that is not
a finding: it takes the non-lesion label most common on its one-voxel shell (the organ it sits
in). Specks of 1-10 voxels in a case without that disease are what costs a voxel-wise head most
on the CPU tier (docs/benchmarks.md), and no real lesion of a benchmark is that small.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
from scipy import ndimage


def one_disease_per_lesion(labels: np.ndarray, lesion_values: Iterable[int], min_voxels: int = 0) -> np.ndarray:
    """A copy of `labels` in which every connected lesion carries its majority lesion label
    (ties: the lower label value); lesions under `min_voxels` take their surroundings' label."""
    lesion_values = np.asarray(sorted({int(v) for v in lesion_values}), dtype=labels.dtype)
    out = labels.copy()
    if lesion_values.size == 0:
        return out
    is_lesion = np.isin(labels, lesion_values)
    components, count = ndimage.label(is_lesion, structure=np.ones((3,) * labels.ndim, dtype=bool))
    if count == 0:
        return out
    # votes[c, k]: voxels of component c (1-based) with lesion label lesion_values[k]
    index = np.searchsorted(lesion_values, labels[is_lesion])
    votes = np.zeros((count + 1, lesion_values.size), dtype=np.int64)
    np.add.at(votes, (components[is_lesion], index), 1)
    winner = lesion_values[np.argmax(votes, axis=1)]
    out[is_lesion] = winner[components[is_lesion]]
    if min_voxels > 0:
        sizes = votes.sum(1)
        for c in np.flatnonzero(sizes[1:] < min_voxels) + 1:
            speck = components == c
            out[speck] = _surrounding_label(labels, speck, is_lesion)
    return out


def _surrounding_label(labels: np.ndarray, component: np.ndarray, is_lesion: np.ndarray) -> int:
    """The non-lesion label most common on the 26-connected one-voxel shell of `component`."""
    shell = ndimage.binary_dilation(component, structure=np.ones((3,) * labels.ndim, dtype=bool)) & ~is_lesion
    values, counts = np.unique(labels[shell], return_counts=True)
    return int(values[np.argmax(counts)]) if values.size else 0
