"""Expose the multi-scale decoder features of the network nnU-Net builds from its plans.

The adapter owns the unmodified nnU-Net network and records each decoder stage's output with
forward hooks, so nnU-Net's architecture code runs as is (its own segmentation output included)
and any decoder with a `stages` ModuleList (UNetDecoder, used by PlainConvUNet and
ResidualEncoderUNet) is supported without copying its loop.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, Union

import torch
from torch import nn

from nnunetv2.utilities.get_network_from_plans import get_network_from_plans


@dataclass
class BackboneOutput:
    """What the Malenia head reads from the backbone.

    seg: nnU-Net's own output (a tensor, or the deep-supervision list, exactly as nnU-Net returns it).
    decoder_features: every decoder stage output, coarse to fine (the last one is per-voxel, F4).
    """

    seg: Union[torch.Tensor, list[torch.Tensor]]
    decoder_features: list[torch.Tensor]

    @property
    def pixel_features(self) -> torch.Tensor:
        return self.decoder_features[-1]


def build_nnunet_backbone(arch_class_name: str, arch_kwargs: dict, arch_kwargs_req_import: Sequence[str],
                          input_channels: int, num_classes: int,
                          deep_supervision: bool = True) -> nn.Module:
    """Build the backbone exactly as nnU-Net's default trainer does (same helper, same init)."""
    return get_network_from_plans(arch_class_name, arch_kwargs, list(arch_kwargs_req_import), input_channels,
                                  num_classes, allow_init=True, deep_supervision=deep_supervision)


class NnUNetBackboneAdapter(nn.Module):
    """Run an nnU-Net network and return its output plus its decoder's per-stage features."""

    def __init__(self, network: nn.Module):
        super().__init__()
        decoder = getattr(network, "decoder", None)
        encoder = getattr(network, "encoder", None)
        if decoder is None or encoder is None or not isinstance(getattr(decoder, "stages", None), nn.ModuleList):
            raise TypeError(f"{type(network).__name__} has no encoder/decoder.stages; only nnU-Net U-Net style "
                            "architectures (PlainConvUNet, ResidualEncoderUNet) are supported")
        self.network = network
        self._captured: list[torch.Tensor] = []
        for stage in decoder.stages:
            stage.register_forward_hook(self._capture)
        # Decoder stage s merges the skip of encoder stage -(s+2): that fixes its channels and stride.
        n = len(decoder.stages)
        self.feature_channels: list[int] = [int(encoder.output_channels[-(s + 2)]) for s in range(n)]
        strides = [list(st) if isinstance(st, (list, tuple)) else [st] * 3 for st in encoder.strides]
        cumulative = []
        acc = [1] * len(strides[0])
        for st in strides:
            acc = [a * int(b) for a, b in zip(acc, st)]
            cumulative.append(list(acc))
        self.feature_strides: list[tuple[int, ...]] = [tuple(cumulative[-(s + 2)]) for s in range(n)]

    def _capture(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        self._captured.append(output)

    @property
    def decoder(self) -> nn.Module:
        return self.network.decoder

    def forward(self, x: torch.Tensor) -> BackboneOutput:
        self._captured = []
        try:
            seg = self.network(x)
            feats = self._captured
        finally:
            self._captured = []
        if len(feats) != len(self.feature_channels):
            raise RuntimeError(f"captured {len(feats)} decoder stages, expected {len(self.feature_channels)}")
        return BackboneOutput(seg=seg, decoder_features=feats)
