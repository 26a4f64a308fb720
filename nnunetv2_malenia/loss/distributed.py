"""Global-batch helpers for DDP: gather with gradient, padded to the largest per-rank count.

Without an initialised process group (or with one rank) they are identities, so the same loss
code runs in single-process training and tests.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from nnunetv2.utilities.ddp_allgather import AllGatherGrad


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def all_gather_padded(x: torch.Tensor, with_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate every rank's rows of x (n_r, ...) -> (world * n_max, ...) and a bool row mask.

    Every rank must call this (also with zero rows). With gradient, nnU-Net's AllGatherGrad sends
    each rank the gradient of its own rows summed over ranks, which DDP's averaging turns into the
    gradient of the global-batch loss.
    """
    if world_size() == 1:
        return x, torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    count = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    counts = [torch.zeros_like(count) for _ in range(world_size())]
    dist.all_gather(counts, count)
    counts_t = torch.cat(counts)
    n_max = max(int(counts_t.max()), 1)
    pad = x.new_zeros(n_max - x.shape[0], *x.shape[1:])
    padded = torch.cat([x, pad], dim=0)
    if with_grad:
        gathered = AllGatherGrad.apply(padded)  # (world, n_max, ...)
    else:
        parts = [torch.zeros_like(padded) for _ in range(world_size())]
        dist.all_gather(parts, padded.contiguous())
        gathered = torch.stack(parts)
    valid = torch.arange(n_max, device=x.device)[None, :] < counts_t[:, None]
    return gathered.flatten(0, 1), valid.flatten()


def global_mean_count(n_local: int, device: torch.device) -> float:
    """Average over ranks of a per-rank count, at least 1 (Mask2Former's num_masks normaliser)."""
    if world_size() == 1:
        return max(float(n_local), 1.0)
    t = torch.tensor([float(n_local)], device=device)
    dist.all_reduce(t)
    return max(float(t.item()) / world_size(), 1.0)
