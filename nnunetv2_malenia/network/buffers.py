"""Buffers whose size is data, not architecture (vocabulary, knowledge table).

nnU-Net's predictor rebuilds the network before it loads the checkpoint, without knowing the
vocabulary or table sizes; these buffers therefore take the shape stored in the state dict.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


class ResizableBuffersMixin(nn.Module):
    """Adopt the checkpoint's shape for the buffers named in `_resizable_buffers` when loading."""

    _resizable_buffers: tuple[str, ...] = ()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        for name in self._resizable_buffers:
            key = prefix + name
            if key in state_dict:
                cur = getattr(self, name)
                new = state_dict[key]
                if cur.shape != new.shape:
                    setattr(self, name, torch.empty(new.shape, dtype=cur.dtype, device=cur.device))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


def as_index_tensor(values: Iterable[int] | torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(list(values) if not isinstance(values, torch.Tensor) else values,
                           dtype=torch.long, device=device).reshape(-1)
