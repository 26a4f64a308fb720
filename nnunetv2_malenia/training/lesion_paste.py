"""Cross-organ lesion copy-paste: seen training lesions moved into another organ of a patch.

Why: with a handful of seen diseases, each attribute value comes with an organ (specific features
"presence of decreased density areas" only in liver tumours, "calcified foci" only in kidney
tumours and liver cysts, every splenic lesion round or lobulated and homogeneous), and a readout
trained on them names a new lesion with its organ's seen values (docs/benchmarks.md, the per-type
diagnosis). Finding fails the same way: nnU-Net's head and the tokens learn "a darker spot in the
liver", and a hyperdense liver lesion stays liver. Moving a real lesion, with its own attribute
values, into another organ shows each value's look in organs that never had it, and shows each
organ lesions of every look. This is TumorCP's inter-organ copy-paste (Yang et al., MICCAI 2021)
with the lesion's attribute targets carried along.

What moves and how:
- a bank of the training cases' lesions (connected components of each lesion label, as the
  targets are built), each with the 2-voxel margin of its own organ around it, which carries an
  ill-defined margin's blur;
- the crop is shifted by the difference of the two hosts' median intensities (per channel), so
  its density relative to the host is kept and its absolute number no longer names its organ;
  hosts further apart than `max_host_difference_hu` (aerated lung against solid organs: a lung
  nodule's density is against air) are not swapped;
- it keeps its label in nnU-Net's target (a liver tumour pasted into a kidney is still a liver
  tumour, as in TumorCP) and its attribute values, except the types that describe where it is or
  the scan it came from (`place_types`: location, relationship, enhancement status), which get no
  target. Enhancement status is the scan's phase: a lesion from a non-contrast case pasted into a
  contrast-enhanced patch would teach the wrong phase (measured: with it kept, the voxel readout's
  enhancement status fell from 0.97 to 0.60 right on seen lesions, docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
from scipy import ndimage

from nnunetv2_malenia.knowledge import Vocabulary
from nnunetv2_malenia.training.lesion_targets import connected_lesions

RING_VOXELS = 4  # the host's intensity: median of its voxels within this distance of the lesion


@dataclass(frozen=True)
class LesionPasteConfig:
    """How often and which lesions are moved. Intensities in HU for CT-normalised data (converted
    with the plans' foreground std, as the synthetic anomalies are), else in normalised units."""

    probability: float = 0.5            # per patch
    halo_voxels: int = 2                # margin of the source organ moved with the lesion
    min_voxels: int = 30                # smaller components are not banked
    max_host_difference_hu: float = 300.0
    # Share of the lesion that must lie in the target organ. On the CPU tier (cases of 48^3 voxels)
    # lesions are large next to the kidneys, spleen and pancreas, so requiring all of it would
    # leave them few places; the rest overhangs, as an exophytic lesion does.
    min_inside: float = 0.6
    place_types: tuple[str, ...] = ("location", "relationship", "enhancement_status")
    attempts: int = 12                  # placements tried per patch before giving up
    # Linear zoom of the moved lesion (with its margin), drawn log-uniform in [low, high]; (1, 1):
    # moved at its own size. Why: on the varied tier each seen disease has its size range (liver
    # tumours, the one disease with decreased density areas, are the smallest lesions, median 246
    # voxels; cysts among the largest), so a readout can read a value from the size alone.
    scale: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"LesionPasteConfig.probability must be in [0, 1], got {self.probability}")
        if self.halo_voxels < 0 or self.min_voxels < 1:
            raise ValueError(f"LesionPasteConfig: halo_voxels must be >= 0 and min_voxels >= 1, got "
                             f"{self.halo_voxels} and {self.min_voxels}")
        if not 0.0 < self.min_inside <= 1.0:
            raise ValueError(f"LesionPasteConfig.min_inside must be in (0, 1], got {self.min_inside}")
        if len(self.scale) != 2 or not 0.0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"LesionPasteConfig.scale must be (low, high) with 0 < low <= high, got {self.scale}")


@dataclass
class BankedLesion:
    """One training lesion cut out of its case, with what pasting it needs."""

    image: np.ndarray        # (C, x, y, z): the lesion's box and `halo_voxels` around it
    mask: np.ndarray         # (x, y, z) bool: the lesion
    halo: np.ndarray         # (x, y, z) bool: margin voxels that were its organ
    label: int               # its lesion label
    organ: int               # the organ label it lay in
    host: np.ndarray         # (C,) median intensity of that organ around it
    attributes: np.ndarray   # multi-hot vocabulary vector, place types cleared
    case: str


def place_values(vocabulary: Vocabulary, cfg: LesionPasteConfig) -> np.ndarray:
    """Bool per vocabulary value: True for the values of `cfg.place_types`, which a moved lesion
    gets no target for."""
    place = [vocabulary.type_keys.index(k) for k in cfg.place_types if k in vocabulary.type_keys]
    return np.isin(np.asarray(vocabulary.value_type), place)


def _host_organ(segmentation: np.ndarray, mask: np.ndarray, organ_labels: set[int]) -> tuple[int, np.ndarray] | None:
    """(organ label, its voxels in a ring around the lesion) for the organ most of the ring is."""
    ring = ndimage.binary_dilation(mask, iterations=RING_VOXELS) & ~mask
    labels, counts = np.unique(segmentation[ring], return_counts=True)
    candidates = [(c, int(l)) for l, c in zip(labels, counts) if int(l) in organ_labels]
    if not candidates:
        return None
    count, organ = max(candidates)
    return (organ, ring & (segmentation == organ)) if count >= 10 else None


def build_lesion_bank(cases: Iterable[tuple[str, np.ndarray, np.ndarray]], lesion_labels: Iterable[int],
                      attributes_of: Callable[[str, int], np.ndarray], cleared: np.ndarray,
                      cfg: LesionPasteConfig) -> list[BankedLesion]:
    """Bank every lesion of `cases` ((key, data (C, X, Y, Z), segmentation (X, Y, Z))) that lies in
    an organ; `attributes_of(key, label)` gives its multi-hot vector, `cleared` the values to drop."""
    lesion_labels = sorted(lesion_labels)
    bank: list[BankedLesion] = []
    for key, data, segmentation in cases:
        organ_labels = {int(l) for l in np.unique(segmentation) if l > 0 and l not in lesion_labels}
        for label, mask in connected_lesions(segmentation, lesion_labels, max_instances=1_000):
            if mask.sum() < cfg.min_voxels:
                continue
            host = _host_organ(segmentation, mask, organ_labels)
            if host is None:
                continue
            organ, ring = host
            around = ndimage.binary_dilation(mask, iterations=cfg.halo_voxels) if cfg.halo_voxels else mask
            box = ndimage.find_objects(around.astype(np.uint8))[0]
            attributes = attributes_of(key, label).copy()
            attributes[cleared] = False
            bank.append(BankedLesion(
                image=np.array(data[(slice(None), *box)], dtype=np.float32), mask=mask[box],
                halo=(around & ~mask & (segmentation == organ))[box], label=label, organ=organ,
                host=np.array([np.median(channel[ring]) for channel in data], dtype=np.float32),
                attributes=attributes, case=key))
    return bank


def _zoomed(mask: np.ndarray, halo: np.ndarray, crop: np.ndarray, factor: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lesion's box zoomed by `factor` (linear): the image trilinearly, each mask as its
    trilinear interpolation above one half, so a zoomed outline is as smooth as the original's."""
    def zoom(x: np.ndarray) -> np.ndarray:
        return ndimage.zoom(x.astype(np.float32), factor, order=1, mode="nearest", grid_mode=True)

    zoomed_mask = zoom(mask) > 0.5
    zoomed_halo = (zoom(halo) > 0.5) & ~zoomed_mask
    return zoomed_mask, zoomed_halo, np.stack([zoom(channel) for channel in crop])


def paste_lesion(image: np.ndarray, segmentation: np.ndarray, lesion_labels: set[int], bank: list[BankedLesion],
                 cfg: LesionPasteConfig, intensity_unit: float, clip: tuple[float, float],
                 rng: np.random.Generator, allowed: Callable[[int], bool] = lambda label: True,
                 ) -> tuple[BankedLesion, np.ndarray] | None:
    """Move one banked lesion into another organ of the patch (`image` (C, X, Y, Z) changed in
    place); returns it and its mask in the patch, or None (the patch's draw, or no placement:
    no other organ, no room away from the patch's own lesions, hosts too far apart).
    `intensity_unit`: one HU in the image's units; `allowed(label)`: may this label be written
    into this case (partial labels)."""
    if not bank or rng.random() >= cfg.probability:
        return None
    present = {int(l) for l in np.unique(segmentation)}
    organs = sorted(l for l in present if l > 0 and l not in lesion_labels)
    taken = ndimage.binary_dilation(np.isin(segmentation, list(lesion_labels)), iterations=2)
    # per organ: each free voxel's distance to the nearest voxel that is not (the patch's border and
    # its lesions count as outside); organs are drawn by their free volume, centres by their depth
    room = {o: ndimage.distance_transform_edt(np.pad((segmentation == o) & ~taken, 1))[1:-1, 1:-1, 1:-1]
            for o in organs}
    level = {o: np.array([np.median(channel[segmentation == o]) for channel in image]) for o in organs}
    limit = cfg.max_host_difference_hu * intensity_unit
    for _ in range(cfg.attempts):
        lesion = bank[rng.integers(len(bank))]
        targets = [o for o in organs if o != lesion.organ and room[o].max() >= 2.0
                   and np.abs(level[o] - lesion.host).max() <= limit]
        if not targets or not allowed(lesion.label):
            continue
        volume = np.array([(room[o] > 0).sum() for o in targets], dtype=np.float64)
        organ = targets[rng.choice(len(targets), p=volume / volume.sum())]
        depth = room[organ].ravel()
        centre = np.unravel_index(rng.choice(depth.size, p=depth ** 3 / (depth ** 3).sum()), segmentation.shape)
        flips = tuple(axis for axis in range(3) if rng.random() < 0.5)
        mask, halo = np.flip(lesion.mask, flips), np.flip(lesion.halo, flips)
        crop = np.flip(lesion.image, tuple(a + 1 for a in flips))
        if cfg.scale != (1.0, 1.0):
            mask, halo, crop = _zoomed(mask, halo, crop, float(np.exp(rng.uniform(*np.log(cfg.scale)))))
        # the lesion's box around the centre, cut where it leaves the patch (as patches cut lesions)
        start = np.array(centre) - np.array(mask.shape) // 2
        lo, hi = np.maximum(start, 0), np.minimum(start + mask.shape, segmentation.shape)
        box = tuple(slice(l, h) for l, h in zip(lo, hi))
        inner = tuple(slice(l - s0, h - s0) for l, h, s0 in zip(lo, hi, start))
        if mask[inner].sum() < cfg.min_voxels:
            continue
        mask, halo, crop = mask[inner], halo[inner], crop[(slice(None), *inner)]
        host_box = segmentation[box] == organ
        if host_box[mask].mean() < cfg.min_inside or taken[box][mask | halo].any():
            continue  # mostly in the organ, away from the patch's own lesions
        ring = ndimage.binary_dilation(mask, iterations=RING_VOXELS) & ~mask & host_box
        if ring.sum() < 10:
            continue
        target_host = np.array([np.median(channel[box][ring]) for channel in image], dtype=np.float32)
        shift = target_host - lesion.host
        if np.abs(shift).max() > limit:
            continue
        weight = np.maximum(ndimage.gaussian_filter((mask | halo).astype(np.float32), 0.5) * (halo & host_box),
                            mask.astype(np.float32))
        region = image[(slice(None), *box)]
        region[...] = np.clip(region * (1 - weight) + (crop + shift[:, None, None, None]) * weight, *clip)
        placed = np.zeros(segmentation.shape, dtype=bool)
        placed[box] = mask
        return lesion, placed
    return None
