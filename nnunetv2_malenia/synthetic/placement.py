"""Where a lesion goes: its Location (organ sub-region) and Relationship with surrounding organs.

"close relationship with adjacent organs": the lesion sits at the edge of its organ where another
organ, muscle, bone or vessel is near, and is grown until it abuts it (it never grows into it).
"no close relationship": the lesion keeps at least `DISTANT_MARGIN` voxels from every such
structure and is wrapped in a shell of its host organ's parenchyma (a mass inside the organ).
Lesions of one case never touch each other. Everything works in voxel units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.synthetic.anatomy import LOCATION_ORGAN, LOCATIONS, Anatomy
from nnunetv2_malenia.synthetic.fields import smooth_field

CLOSE = "close relationship with adjacent organs"
DISTANT = "no close relationship with adjacent organs"
DISTANT_MARGIN = 2.0   # voxels between a "distant" lesion and any other structure (64-voxel axis)
SHELL_VOXELS = 2       # host parenchyma wrapped around a "distant" lesion
TRIES = 12


class PlacementError(MaleniaError):
    """A lesion could not be placed as its attributes demand (organ too small for the shape)."""


@dataclass
class PlacedLesion:
    box: tuple[slice, slice, slice]   # the lesion's box in the volume
    mask: np.ndarray                  # bool over the box: the lesion's label
    centre: tuple[int, int, int]
    host: int                         # organ label of the host organ
    location: str


class Placer:
    """Places the lesions of one case in turn, updating the anatomy as they are committed."""

    def __init__(self, anatomy: Anatomy, rng: np.random.Generator):
        self.anatomy = anatomy
        self.rng = rng
        self.occupied = np.zeros(anatomy.shape, dtype=bool)
        self._structures = anatomy.structures()
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        # The gap scales with the volume, but two voxel centres apart is the least that reads as
        # "not touching" after the PSF.
        self.margin = float(np.clip(DISTANT_MARGIN * min(anatomy.shape) / 64.0, 1.5, 4.0))

    # -- geometry helpers -------------------------------------------------------------------
    def other(self, host: int) -> np.ndarray:
        """Everything a lesion of `host` must not enter: other organs, muscle, bone, vessels."""
        organs = self.anatomy.organs
        return ((organs != 0) & (organs != host)) | self._structures

    def _distances(self, host: int) -> tuple[np.ndarray, np.ndarray]:
        if host not in self._cache:
            d_other = ndimage.distance_transform_edt(~self.other(host)).astype(np.float32)
            if self.occupied.any():
                d_occ = ndimage.distance_transform_edt(~self.occupied).astype(np.float32)
            else:
                d_occ = np.full(self.anatomy.shape, np.inf, dtype=np.float32)
            self._cache[host] = (d_other, d_occ)
        return self._cache[host]

    def _inner(self, margin: int) -> np.ndarray:
        inner = np.zeros(self.anatomy.shape, dtype=bool)
        inner[tuple(slice(margin, max(margin, n - margin)) for n in self.anatomy.shape)] = True
        return inner

    # -- placement ----------------------------------------------------------------------------
    def place(self, outline: np.ndarray, location: str, relationship: str) -> PlacedLesion | None:
        """Find a centre in `location` that gives `relationship`; None if none fits this outline."""
        host = LOCATION_ORGAN[location]
        half = outline.shape[0] // 2
        offsets = np.argwhere(outline) - half
        extent = float(np.sqrt((offsets ** 2).sum(axis=1)).max()) if len(offsets) else 0.0
        r_eff = (3 * outline.sum() / (4 * np.pi)) ** (1 / 3)
        d_other, d_occ = self._distances(host)
        region = (self.anatomy.location == LOCATIONS.index(location) + 1) & self._inner(int(np.ceil(extent)) + 1)
        region &= d_occ > extent + 2.0
        if relationship == CLOSE:
            candidates = region & (d_other >= 1.0) & (d_other <= max(1.5, 0.6 * r_eff))
        else:
            candidates = region & (d_other >= extent + self.margin)
        points = np.argwhere(candidates)
        if len(points) == 0:
            return None
        other = self.other(host)
        for i in self.rng.permutation(len(points))[:TRIES]:
            centre = tuple(int(v) for v in points[i])
            box, crop = _clipped_box(centre, half, self.anatomy.shape)
            mask = outline[crop] & ~other[box] & self.anatomy.body[box] & ~self.occupied[box]
            mask = _component_at(mask, tuple(c - b.start for c, b in zip(centre, box)))
            if mask.sum() < 0.6 * outline.sum():
                continue
            if relationship == CLOSE and not (ndimage.binary_dilation(mask) & other[box]).any():
                continue
            return PlacedLesion(box, mask, centre, host, location)
        return None

    def place_wall(self, radius: float, location: str, relationship: str) -> PlacedLesion | None:
        """Colon 'irregular wall thickening': a circumferential mass along a stretch of the wall."""
        tube = self.anatomy.tubes["colon"]
        host = LOCATION_ORGAN[location]
        unit = float(np.mean(self.anatomy.voxels_per_unit))
        r = radius / unit
        seg = LOCATIONS.index(location)
        inside_t = (tube.points_t > 0.03) & (tube.points_t < 0.97)
        samples = np.flatnonzero((tube.points_segment == seg) & inside_t)
        d_other, d_occ = self._distances(host)
        other = self.other(host)
        outer_max = (float(tube.radius.max()) + 1.3 * r) * unit
        for i in self.rng.permutation(samples)[:TRIES * 2]:
            centre = tuple(int(round(float(v))) for v in tube.points_zyx_vox[i])
            if not all(0 <= c < n for c, n in zip(centre, self.anatomy.shape)):
                continue
            if d_occ[centre] <= outer_max + 2.0:
                continue
            if relationship == DISTANT and d_other[centre] < outer_max + self.margin:
                continue
            t0 = float(tube.points_t[i])
            wobble = smooth_field(self.rng, tube.t.shape, coarse=4)
            thick = r * (0.75 + 0.25 * wobble)
            lumen = (tube.radius - 0.045) * 0.4
            half_t = 1.5 * r / tube.length
            full = np.zeros(self.anatomy.shape, dtype=bool)
            full[tube.box] = (np.abs(tube.t - t0) < half_t) & (tube.dist >= lumen) & (tube.dist < tube.radius + thick)
            full &= ~other & self.anatomy.body & ~self.occupied
            if not full.any():
                continue
            box = _bbox(full, pad=2)
            mask = _component_at(full[box], tuple(int(np.argwhere(full[box]).mean(axis=0).round()[k]) for k in range(3)), largest=True)
            if relationship == CLOSE and not (ndimage.binary_dilation(mask) & other[box]).any():
                continue
            return PlacedLesion(box, mask, centre, host, location)
        return None

    def commit(self, lesion: PlacedLesion, relationship: str) -> None:
        """Make the lesion part of the anatomy: host tissue under it, parenchyma shell if distant."""
        a = self.anatomy
        box = lesion.box
        if relationship == DISTANT:
            shell = ndimage.binary_dilation(lesion.mask, iterations=SHELL_VOXELS)
            shell &= ~self.other(lesion.host)[box] & a.body[box] & ~self.occupied[box]
            a.organs[box][shell] = lesion.host
            a.tissue[box][shell] = lesion.host
            loc = a.location[box]
            loc[shell & (loc == 0)] = LOCATIONS.index(lesion.location) + 1
        a.tissue[box][lesion.mask] = lesion.host   # the lesion replaces whatever it grew over
        self.occupied[box] |= lesion.mask
        self._cache.clear()


def _clipped_box(centre: tuple[int, int, int], half: int, shape: tuple[int, ...]):
    """The volume box of a (2*half+1)^3 outline centred at `centre`, and the outline's matching crop."""
    box, crop = [], []
    for c, n in zip(centre, shape):
        lo, hi = max(c - half, 0), min(c + half + 1, n)
        box.append(slice(lo, hi))
        crop.append(slice(lo - (c - half), hi - (c - half)))
    return tuple(box), tuple(crop)


def _component_at(mask: np.ndarray, point: tuple[int, int, int], largest: bool = False) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    label = labels[point]
    if label == 0 or largest:
        sizes = np.bincount(labels.ravel())[1:]
        label = int(np.argmax(sizes)) + 1
    return labels == label


def _bbox(mask: np.ndarray, pad: int) -> tuple[slice, slice, slice]:
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
