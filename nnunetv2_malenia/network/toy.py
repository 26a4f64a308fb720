"""Small nnU-Net plans and vocabularies for tests, benchmarks and examples (no real data needed)."""
from __future__ import annotations

from typing import Sequence

import torch

PLAIN_UNET = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
RESENC_UNET = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
REQ_IMPORT = ("conv_op", "norm_op", "dropout_op", "nonlin")


def unet_plans(features: Sequence[int], arch_class_name: str = PLAIN_UNET, convs_per_stage: int = 2) -> dict:
    """A 3D fullres-like `architecture` entry of nnU-Net plans: first stage stride 1, then 2 per axis."""
    n = len(features)
    kwargs = dict(
        n_stages=n, features_per_stage=list(features), conv_op="torch.nn.modules.conv.Conv3d",
        kernel_sizes=[[3, 3, 3]] * n, strides=[[1, 1, 1]] + [[2, 2, 2]] * (n - 1),
        n_conv_per_stage_decoder=[convs_per_stage] * (n - 1), conv_bias=True,
        norm_op="torch.nn.modules.instancenorm.InstanceNorm3d", norm_op_kwargs={"eps": 1e-05, "affine": True},
        dropout_op=None, dropout_op_kwargs=None, nonlin="torch.nn.LeakyReLU", nonlin_kwargs={"inplace": True},
    )
    if arch_class_name == RESENC_UNET:
        kwargs["n_blocks_per_stage"] = [1] + [convs_per_stage] * (n - 1)
    else:
        kwargs["n_conv_per_stage"] = [convs_per_stage] * n
    return {"network_class_name": arch_class_name, "arch_kwargs": kwargs, "_kw_requires_import": list(REQ_IMPORT)}


def random_vocabulary(values_per_type: Sequence[int], dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (V, dim) embeddings and the (V,) type index of each value."""
    g = torch.Generator().manual_seed(seed)
    value_type = torch.cat([torch.full((k,), t, dtype=torch.long) for t, k in enumerate(values_per_type)])
    return torch.randn(len(value_type), dim, generator=g), value_type
