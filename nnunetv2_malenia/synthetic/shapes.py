"""Lesion outlines from the Shape attribute (and spiculated margins), in a local voxel box.

Each function returns a boolean mask in a cubic box whose centre voxel is the lesion centre.
Shapes are chosen so the value shows in the outline: round-like is a mildly flattened ellipsoid
(highest sphericity), irregular a star-shaped body with random bulges and dents, lobulated a
union of overlapping lobes with notches between them, and spicules add thin tapering strands
(raising surface-to-volume ratio). Colon "irregular wall thickening" follows the colon wall and
is drawn by `placement`, which knows the tube.
"""

from __future__ import annotations

import numpy as np

from nnunetv2_malenia.synthetic.fields import random_rotation, random_unit_vectors

BOX_SHAPES = ("round-like", "irregular", "lobulated")
WALL_SHAPE = "irregular wall thickening"


def _box(half: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = np.arange(-half, half + 1, dtype=np.float32)
    return r[:, None, None], r[None, :, None], r[None, None, :]


def extent_factor(shape: str, spiculated: bool) -> float:
    """How far (in radii) the outline can reach from the centre; sizes the local box."""
    reach = {"round-like": 1.05, "irregular": 1.6, "lobulated": 1.45}.get(shape, 1.6)
    return max(reach, 1.9) if spiculated else reach


def lesion_outline(shape: str, radius: float, rng: np.random.Generator, spiculated: bool = False) -> np.ndarray:
    """Boolean mask of one lesion, centred in a (2h+1)^3 box; `radius` in voxels (>= 1.2)."""
    half = int(np.ceil(radius * extent_factor(shape, spiculated))) + 2
    z, y, x = _box(half)
    rot = random_rotation(rng)
    # Rotated coordinates so elongation and lobes have random orientation.
    pz = rot[0, 0] * z + rot[0, 1] * y + rot[0, 2] * x
    py = rot[1, 0] * z + rot[1, 1] * y + rot[1, 2] * x
    px = rot[2, 0] * z + rot[2, 1] * y + rot[2, 2] * x
    if shape == "round-like":
        b, c = rng.uniform(0.85, 1.0, size=2)
        mask = (pz / radius) ** 2 + (py / (radius * b)) ** 2 + (px / (radius * c)) ** 2 <= 1.0
    elif shape == "irregular":
        mask = _irregular(pz, py, px, radius, rng)
    elif shape == "lobulated":
        mask = _lobulated(z, y, x, radius, rng)
    else:
        raise ValueError(f"no box outline for shape {shape!r}")
    if spiculated:
        mask |= _spicules(z, y, x, radius, rng)
    mask[half, half, half] = True
    return mask


def _irregular(pz, py, px, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Star-shaped body: radius varies with direction by random bulges (+) and dents (-)."""
    pz, py, px = pz / rng.uniform(0.95, 1.25), py, px * rng.uniform(0.7, 0.9)
    rho = np.sqrt(pz ** 2 + py ** 2 + px ** 2) + 1e-6
    dirs = random_unit_vectors(rng, 7)
    amps = rng.uniform(0.45, 0.7, size=7) * np.array([1, -1, 1, -1, 1, -1, 1])
    kappa = rng.uniform(4.0, 7.0, size=7)
    modulation = np.ones_like(rho)
    for v, a, k in zip(dirs, amps, kappa):
        cos = (pz * v[0] + py * v[1] + px * v[2]) / rho
        modulation = modulation + a * np.exp(k * (cos - 1.0))
    return rho <= 0.85 * radius * np.clip(modulation, 0.45, 1.9)


def _lobulated(z, y, x, radius: float, rng: np.random.Generator) -> np.ndarray:
    """A core with 4-6 protruding lobes: a scalloped contour with notches between lobes."""
    mask = z ** 2 + y ** 2 + x ** 2 <= (0.7 * radius) ** 2
    n = int(rng.integers(4, 7))
    for v in random_unit_vectors(rng, n):
        d = rng.uniform(0.6, 0.8) * radius
        r = rng.uniform(0.48, 0.6) * radius
        mask |= (z - v[0] * d) ** 2 + (y - v[1] * d) ** 2 + (x - v[2] * d) ** 2 <= r ** 2
    return mask


def _spicules(z, y, x, radius: float, rng: np.random.Generator) -> np.ndarray:
    """8-12 thin, tapering strands radiating from the surface (the 'sunburst' of a spiculated mass)."""
    out = np.zeros(np.broadcast_shapes(z.shape, y.shape, x.shape), dtype=bool)
    for v in random_unit_vectors(rng, int(rng.integers(8, 13))):
        length = rng.uniform(1.45, 1.8) * radius
        t = np.clip(z * v[0] + y * v[1] + x * v[2], 0.0, length)
        dist2 = (z - t * v[0]) ** 2 + (y - t * v[1]) ** 2 + (x - t * v[2]) ** 2
        width = 0.55 + 0.5 * (1.0 - t / length)
        out |= dist2 <= width ** 2
    return out


def sphericity(mask: np.ndarray) -> float:
    """Voxel-face sphericity pi^(1/3) (6V)^(2/3) / A; only for comparing outlines with each other."""
    return float(np.pi ** (1 / 3) * (6 * mask.sum()) ** (2 / 3) / surface_faces(mask))


def surface_faces(mask: np.ndarray) -> int:
    """Number of exposed voxel faces (a surface area in voxel units)."""
    m = np.pad(mask.astype(np.int8), 1)
    return int(sum(np.abs(np.diff(m, axis=a)).sum() for a in range(3)))
