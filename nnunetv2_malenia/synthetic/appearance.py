"""Lesion CT numbers from the Density, Density Variation, Surface and Specific Features values.

Density is relative to the host organ in the scan's phase: after contrast, parenchyma enhances
more than most tumours, so hypo/hyperdense lesions differ more from the organ than before
contrast. Every value changes something a test can measure:

- hypodense / hyperdense: mean HU below / above the host by the preset's offsets (30-50 HU in
  the full tier, 80-100 HU in the CPU tier);
- isodense: mean within a few HU of the host, made visible by a thin darker capsule (1 voxel);
- mixed-density: two intermixed compartments, one below and one above the host;
- low-density ground-glass opacity (lung only): hazy -560 HU;
- heterogeneous: correlated texture inside (22 HU std in the full tier, 35 in the CPU tier); homogeneous: image noise only;
- ill-defined margin: the lesion blends into its surroundings over ~1.6 voxels (Gaussian), a
  well-defined one only through the scanner's PSF;
- presence of decreased density areas: a necrotic, fluid-density core;
- presence of increased density areas: bright patches (+70 HU);
- calcified foci: small dots of calcium (>1000 HU before the PSF);
- thin cystic wall: fluid content with a 1-voxel enhancing rim;
- cavitation: a gas-filled core. (Spiculated margins change the outline: see `shapes`.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from nnunetv2_malenia.synthetic.fields import random_unit_vectors, smooth_field, texture_field
from nnunetv2_malenia.synthetic.hu import CALCIUM_HU, CONTRAST, FLUID_HU, GAS_HU, GROUND_GLASS_HU
from nnunetv2_malenia.synthetic.presets import FULL, GeneratorPreset

ILL_DEFINED_SIGMA_VOXELS = 1.6
CAPSULE_DROP_HU = 35.0


@dataclass
class LesionLook:
    """What to draw in a lesion's box: blend `hu` in with `weight`, then set the `hard` voxels."""

    hu: np.ndarray
    weight: np.ndarray
    hard: list[tuple[np.ndarray, float]] = field(default_factory=list)


def density_offsets(phase: str, preset: GeneratorPreset = FULL) -> tuple[float, float]:
    """(hypodense drop, hyperdense rise) in HU relative to the host organ in this phase."""
    return preset.hypodense_drop_hu[phase], preset.hyperdense_rise_hu[phase]


def base_density(density: str, host_hu: float, phase: str, in_lung: bool,
                 rng: np.random.Generator, shape: tuple[int, ...], preset: GeneratorPreset = FULL) -> np.ndarray:
    """The lesion's CT numbers before texture and features, as a field over its box."""
    drop, rise = density_offsets(phase, preset)
    solid_lung = 70.0 if phase == CONTRAST else 25.0   # a solid nodule in aerated lung
    field_ = np.empty(shape, dtype=np.float32)
    if density == "hypodense lesion":
        field_[...] = -960.0 if in_lung else host_hu - drop
    elif density == "isodense lesion":
        field_[...] = host_hu
    elif density == "hyperdense lesion":
        field_[...] = solid_lung if in_lung else host_hu + rise
    elif density == "low-density ground-glass opacity":
        field_[...] = GROUND_GLASS_HU
    elif density == "mixed-density lesion":
        # Two compartments on either side of a wavy plane through the centre: both always show.
        v = random_unit_vectors(rng, 1)[0]
        z, y, x = (np.arange(n, dtype=np.float32)[tuple(slice(None) if i == a else None for i in range(3))] - (n - 1) / 2
                   for a, n in enumerate(shape))
        half = max(shape) / 2.0
        split = (z * v[0] + y * v[1] + x * v[2]) + 0.3 * half * smooth_field(rng, shape, coarse=4) > 0.0
        low, high = (GROUND_GLASS_HU, solid_lung) if in_lung else (host_hu - drop - 10, host_hu + rise + 10)
        field_[...] = np.where(split, high, low)
    else:
        raise ValueError(f"no rendering for density {density!r}")
    return field_


def render_lesion(mask: np.ndarray, attributes: dict, host_hu: float, phase: str, in_lung: bool,
                  rng: np.random.Generator, preset: GeneratorPreset = FULL) -> LesionLook:
    """Turn one lesion's attribute values into CT numbers over its box (mask = its label); the
    preset sets the density offsets and the texture strength."""
    shape = mask.shape
    features = set(attributes["specific_features"])
    hu = base_density(attributes["density"], host_hu, phase, in_lung, rng, shape, preset)
    if attributes["density_variation"] == "heterogeneous":
        hu += preset.heterogeneous_std_hu * texture_field(rng, shape, 0.9)

    depth = ndimage.distance_transform_edt(mask)          # voxels to the lesion's edge
    depth_rel = depth / max(float(depth.max()), 1.0)
    rim = mask & (depth <= 1.0)
    base_mean = float(hu[mask].mean()) if mask.any() else host_hu

    if "presence of increased density areas" in features:
        hu += 70.0 * _patches(mask, depth, rng)
    if "presence of decreased density areas" in features:
        core = ndimage.gaussian_filter((depth_rel > 0.45).astype(np.float32), 0.6)
        necrosis = min(FLUID_HU + 12.0, base_mean - 40.0)
        hu = hu * (1 - core) + necrosis * core
    if "cavitation" in features:
        hu[depth_rel > 0.5] = GAS_HU
    if attributes["density"] == "isodense lesion":
        hu[rim] = host_hu - CAPSULE_DROP_HU                # thin capsule, so an isodense lesion shows
    if "thin cystic wall" in features:
        interior = mask & ~rim
        if attributes["density"] in ("hypodense lesion", "isodense lesion"):
            hu[interior] = FLUID_HU + (hu[interior] - base_mean)   # fluid content keeps any texture
        hu[rim] = max(base_mean, host_hu) + (70.0 if phase == CONTRAST else 45.0)

    weight = mask.astype(np.float32)
    if attributes["surface_characteristics"] == "ill-defined margin":
        weight = ndimage.gaussian_filter(weight, ILL_DEFINED_SIGMA_VOXELS)
        # Normalised so even a small lesion keeps its full density at the centre: only the
        # margin is blurred, not the whole lesion washed out.
        weight = np.clip(weight / max(float(weight.max()), 1e-6), 0.0, 1.0)
        weight = np.maximum(weight, (depth > 2.0 * ILL_DEFINED_SIGMA_VOXELS).astype(np.float32))
    look = LesionLook(hu.astype(np.float32), weight.astype(np.float32))

    if "calcified foci" in features:
        look.hard.append((_calcified_dots(mask, depth, rng), CALCIUM_HU))
    return look


def _patches(mask: np.ndarray, depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """2-3 soft blobs (radius ~0.35 of the lesion's depth) inside the lesion, as weights 0..1."""
    inside = np.argwhere(depth >= max(1.0, 0.3 * float(depth.max())))
    radius = max(1.0, 0.45 * float(depth.max()))
    grid = np.indices(mask.shape, dtype=np.float32)
    blobs = np.zeros(mask.shape, dtype=np.float32)
    for i in rng.choice(len(inside), size=min(3, len(inside)), replace=False):
        d2 = sum((g - c) ** 2 for g, c in zip(grid, inside[i]))
        blobs = np.maximum(blobs, np.clip(1.5 - np.sqrt(d2) / radius, 0.0, 1.0))
    return blobs


def _calcified_dots(mask: np.ndarray, depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """1-4 calcium dots (a voxel and its 6 neighbours) inside the lesion, deep enough to stay in it."""
    deep = np.argwhere(depth >= min(2.0, float(depth.max())))
    n = int(np.clip(mask.sum() // 150 + 1, 1, 4))
    dots = np.zeros(mask.shape, dtype=bool)
    for i in rng.choice(len(deep), size=min(n, len(deep)), replace=False):
        dots[tuple(deep[i])] = True
    dots = ndimage.binary_dilation(dots) & mask
    return dots
