"""Specific features that show outside the lesion itself, drawn into the background image.

- surrounding fat stranding: fat within 3 voxels of the lesion rises from -100 to about -45 HU;
- pleural retraction: a soft-tissue strand from a lung lesion to the nearest chest wall;
- pancreatic duct dilatation: a fluid-filled duct along the pancreas, upstream (tail side) of the lesion.
None of these is part of the lesion's label.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from nnunetv2_malenia.synthetic.anatomy import Anatomy
from nnunetv2_malenia.synthetic.fields import texture_field
from nnunetv2_malenia.synthetic.hu import FLUID_HU, Tissue
from nnunetv2_malenia.synthetic.placement import PlacedLesion

STRANDING_RISE_HU = 55.0
STRAND_HU = 15.0


def fat_stranding(image: np.ndarray, anatomy: Anatomy, lesion: PlacedLesion, rng: np.random.Generator) -> None:
    pad = 4
    box = tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n)) for s, n in zip(lesion.box, anatomy.shape))
    mask = np.zeros(tuple(s.stop - s.start for s in box), dtype=bool)
    inner = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(lesion.box, box))
    mask[inner] = lesion.mask
    halo = ndimage.binary_dilation(mask, iterations=3) & ~mask & (anatomy.tissue[box] == Tissue.FAT)
    streaks = np.clip(0.7 + 0.5 * texture_field(rng, mask.shape, 0.8), 0.2, 1.3)
    image[box][halo] += (STRANDING_RISE_HU * streaks)[halo]


def pleural_retraction(image: np.ndarray, anatomy: Anatomy, lesion: PlacedLesion) -> None:
    """A 1-voxel strand from the lesion centre to the closest chest-wall/mediastinal structure."""
    structures = anatomy.structures()
    if not structures.any():
        return
    _, nearest = ndimage.distance_transform_edt(~structures, return_indices=True)
    start = np.array(lesion.centre, dtype=np.float64)
    end = nearest[(slice(None),) + tuple(lesion.centre)].astype(np.float64)
    n = int(np.ceil(np.linalg.norm(end - start) * 2)) + 1
    points = np.unique(np.rint(start + np.linspace(0, 1, n)[:, None] * (end - start)).astype(int), axis=0)
    lesion_full = np.zeros(anatomy.shape, dtype=bool)
    lesion_full[lesion.box] = lesion.mask
    for p in map(tuple, points):
        if not lesion_full[p] and anatomy.organs[p] == lesion.host:
            image[p] = STRAND_HU


def duct_dilatation(image: np.ndarray, anatomy: Anatomy, lesion: PlacedLesion) -> None:
    """Fluid along the pancreatic duct from the lesion to the tail (the obstructed side)."""
    tube = anatomy.tubes["pancreas"]
    box = tube.box
    centre_in_box = tuple(c - s.start for c, s in zip(lesion.centre, box))
    if all(0 <= c < s.stop - s.start for c, s in zip(centre_in_box, box)):
        t0 = float(tube.t[centre_in_box])
    else:
        t0 = 0.5
    unit = float(np.mean(anatomy.voxels_per_unit))
    duct_radius = max(0.28 * float(tube.radius.mean()), 0.9 / unit)
    lesion_full = np.zeros(anatomy.shape, dtype=bool)
    lesion_full[lesion.box] = lesion.mask
    duct = (tube.dist < duct_radius) & (tube.t > t0) & (anatomy.organs[box] == lesion.host) & ~lesion_full[box]
    image[box][duct] = FLUID_HU
