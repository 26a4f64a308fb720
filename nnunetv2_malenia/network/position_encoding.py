"""Fixed 3D sine positional encoding (DETR's 2D encoding extended to three axes)."""
from __future__ import annotations

import math
from typing import Sequence

import torch


def sine_position_encoding_3d(shape: Sequence[int], dim: int, device: torch.device | None = None,
                              dtype: torch.dtype = torch.float32, temperature: float = 10000.0) -> torch.Tensor:
    """Return a (X*Y*Z, dim) encoding of a voxel grid, flattened in C order like `tensor.flatten(2)`.

    Coordinates are normalised to [0, 2*pi] per axis so the same code means the same relative
    position at every scale. The channels are split into three equal groups (x, y, z) of sin/cos
    pairs; channels left over when dim is not divisible by 6 stay zero.
    """
    if len(shape) != 3:
        raise ValueError(f"expected a 3D shape, got {tuple(shape)}")
    per_axis = (dim // 6) * 2  # even number of channels per axis
    n_freq = per_axis // 2
    out = torch.zeros(*shape, dim, device=device, dtype=torch.float32)
    if n_freq == 0:
        return out.flatten(0, 2).to(dtype)
    freqs = temperature ** (torch.arange(n_freq, device=device, dtype=torch.float32) / max(n_freq, 1))
    for axis, size in enumerate(shape):
        coord = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size * 2 * math.pi
        angles = coord[:, None] / freqs[None, :]  # (size, n_freq)
        enc = torch.cat([angles.sin(), angles.cos()], dim=1)  # (size, per_axis)
        view = [1, 1, 1, per_axis]
        view[axis] = size
        out[..., axis * per_axis:(axis + 1) * per_axis] = enc.view(view)
    return out.flatten(0, 2).to(dtype)
