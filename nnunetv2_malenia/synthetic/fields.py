"""Random smooth fields and coordinate grids shared by the anatomy and lesion builders."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def normalized_grid(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open (broadcastable) grids uz, uy, ux in (-1, 1) at voxel centres, array order (z, y, x).

    The phantom is drawn in these body-relative units so it fills any requested shape; x grows
    towards the patient's left, y towards posterior and z towards superior (ITK's LPS with an
    identity direction), so an axial slice shown with row 0 on top is in radiological view.
    """
    axes = [((np.arange(n, dtype=np.float32) + 0.5) / n) * 2.0 - 1.0 for n in shape]
    uz = axes[0][:, None, None]
    uy = axes[1][None, :, None]
    ux = axes[2][None, None, :]
    return uz, uy, ux


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], coarse: int = 6) -> np.ndarray:
    """A low-frequency random field with zero mean and unit std (cubic upsampling of coarse noise).

    Cheap regardless of `shape`: the randomness lives on a `coarse`^3 grid, so organ outlines
    wobble on the scale of the organ, not of the voxel.
    """
    field = rng.standard_normal((coarse,) * len(shape)).astype(np.float32)
    # Separable Gaussian-kernel interpolation: one small matrix product per axis (much cheaper
    # than spline zoom, and as smooth).
    for axis, n in enumerate(shape):
        field = np.moveaxis(np.tensordot(_basis(n, coarse), field, axes=([1], [axis])), 0, axis)
    return _standardize(np.ascontiguousarray(field, dtype=np.float32))


def _basis(n: int, coarse: int) -> np.ndarray:
    """[n, coarse] interpolation weights from coarse nodes (spanning the axis) to voxel centres."""
    nodes = np.linspace(-1.0, 1.0, coarse)
    step = nodes[1] - nodes[0] if coarse > 1 else 2.0
    u = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    w = np.exp(-0.5 * ((u[:, None] - nodes[None, :]) / (0.75 * step)) ** 2)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def texture_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Correlated noise with zero mean and unit std: white noise blurred with `sigma` voxels."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="reflect")
    return _standardize(field)


def _standardize(field: np.ndarray) -> np.ndarray:
    field = field - field.mean()
    std = float(field.std())
    return field / std if std > 0 else field


def random_unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
