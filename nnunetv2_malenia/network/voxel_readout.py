"""Attribute readout per voxel: mask-attribute alignment at the resolution of the masks.

Why: on the CPU tier a token's attribute readout does not even tell a liver cyst from a liver
tumour (83 % of cyst voxels named tumour), while nnUNetTrainer's per-voxel head separates them (85 %
right): the tokens collapse onto a few slots (LEARNABILITY.md 5) and their pooled embedding
carries little more than the organ. The per-voxel features the masks are made of do carry the
appearance. This head maps each voxel's feature into the text space and is trained, like the
tokens, with the multi-positive alignment loss against the lesion's attribute values, on a sample
of each lesion's voxels. At inference, a voxel's readout is scored against the knowledge table
exactly as a token's is (DiseaseHead.disease_given_token), so an unseen row is matched the same
way; the tokens still decide where the lesions are.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
from torch import nn

if TYPE_CHECKING:
    from .attribute_bank import AttributeBank

# voxels drawn per lesion for the alignment loss: every lesion weighs the same, whatever its size
VOXELS_PER_LESION = 64
LOCAL_CHANNELS = 16  # at 32 an epoch of the CPU tier took 84.5 s, against about 37 s without the local CNN
LOCAL_DILATIONS = (1, 2, 4)  # 3^3 kernels: a receptive field of 15 voxels
LOCAL_FIELD = 1 + 2 * sum(LOCAL_DILATIONS)
# per-type readout: channels of each type's own local CNN and hidden units of its own MLP. Eight
# CNNs of 4 channels: 0.45 s forward+backward on a batch of 2 x 48^3 against 0.23 s for the shared
# 16-channel one (8 channels: 0.93 s)
PER_TYPE_CHANNELS = 4
PER_TYPE_HIDDEN = 32


def local_appearance(in_channels: int, channels_out: int = LOCAL_CHANNELS) -> nn.Sequential:
    """A small dilated CNN on the image: per-voxel features that see the lesion and a rim around it,
    but not the whole organ. Measured on the CPU tier (docs/benchmarks.md), a readout on the
    backbone's features reads what lesions of that organ looked like in training (a hyperdense
    liver lesion as a homogeneous round cyst with a thin wall, a heterogeneous splenic metastasis
    as a homogeneous lymphoma): the organ is a shortcut to every attribute. Fed only a 15-voxel
    neighbourhood, the readout has to read the appearance."""
    layers: list[nn.Module] = []
    channels = in_channels
    for dilation in LOCAL_DILATIONS:
        # no normalisation layer: instance norm would hand every voxel the whole patch's statistics
        layers += [nn.Conv3d(channels, channels_out, 3, padding=dilation, dilation=dilation),
                   nn.LeakyReLU(inplace=True)]
        channels = channels_out
    return nn.Sequential(*layers)


def _box_mean(x: torch.Tensor, width: int) -> torch.Tensor:
    """Mean over a width^3 box around each voxel (zero padding counted), as three 1-D passes."""
    for axis in range(3):
        kernel, padding = [1, 1, 1], [0, 0, 0]
        kernel[axis], padding[axis] = width, width // 2
        x = nn.functional.avg_pool3d(x, tuple(kernel), stride=1, padding=tuple(padding), count_include_pad=True)
    return x


def lesion_relative(image: torch.Tensor, mask: torch.Tensor, width: int = LOCAL_FIELD) -> torch.Tensor:
    """image (B, C, X, Y, Z) minus its mean over the lesion voxels (mask (B, 1, X, Y, Z), 0/1) in a
    width^3 box around each voxel, zero outside the mask. The box is the local CNN's receptive
    field: a lesion's mean without connected components (which would not run on the GPU), and
    lesions further apart than that do not mix."""
    # the ratio of two box means is the mean over the box's lesion voxels (at least one voxel's worth)
    lesion_mean = _box_mean(image * mask, width) / _box_mean(mask, width).clamp_min(1.0 / width ** 3)
    return (image - lesion_mean) * mask


class PerTypeLocal(nn.Module):
    """T local CNNs side by side, one per attribute type: image -> (B, T * PER_TYPE_CHANNELS, ...).
    Separate modules, not one grouped convolution, which on CPU was slower still (1.19 s against
    0.93 s forward+backward for 8 x 8 channels on 2 x 48^3).

    The CNNs of `lesion_only` types read the lesion alone: the image inside the lesion mask (zero
    outside) and the mask itself. Why: measured on the varied tier (docs/benchmarks.md), the
    per-type shape and specific-features readouts are right on 0.06 and 0.02 of unseen lesions
    (0.63 and 0.68 of seen ones): an image CNN sees the organ around the lesion, and in training
    the organ tells which disease, so which shape and which features. A type that describes only
    the lesion's outline or content needs nothing else in view, and then the organ cannot be read.

    The CNNs of `mask_only` types read the mask alone. Why: read from the lesion alone, shape was
    still right on only 0.24 of unseen lesions (0.67 of seen ones); the lesion's own CT numbers
    still tell the organ, and the organ the disease. An outline is all a shape value describes.

    With `relative`, the lesion-only CNNs read the lesion's CT numbers minus their mean over the
    lesion (`lesion_relative`). Why: a lesion's absolute CT number is its organ's plus an offset,
    so it tells the organ; on the varied tier splenic metastases (heterogeneous, with decreased
    density areas) were read as homogeneous with no specific features, the values of the spleen's
    seen lesions. Density variation and specific features are texture within the lesion, which
    the deviations from its own mean keep; density, the one type that is the offset itself, reads
    the image."""

    def __init__(self, in_channels: int, num_types: int, lesion_only: Sequence[int] = (),
                 mask_only: Sequence[int] = (), relative: bool = False):
        super().__init__()
        if relative and not lesion_only:
            raise ValueError("relative lesion CT numbers need lesion-only types")
        self.relative = relative
        lesion_only, mask_only = {int(t) for t in lesion_only}, {int(t) for t in mask_only}
        if lesion_only & mask_only:
            raise ValueError(f"type {min(lesion_only & mask_only)} cannot read both the lesion and the mask alone")
        # what each type's CNN reads; a lesion-only CNN reads one more channel, the mask, a mask-only
        # CNN the mask alone
        self.views = tuple("lesion" if t in lesion_only else "mask" if t in mask_only else "image"
                           for t in range(num_types))
        width = {"image": in_channels, "lesion": in_channels + 1, "mask": 1}
        self.cnns = nn.ModuleList(local_appearance(width[view], PER_TYPE_CHANNELS) for view in self.views)

    @property
    def needs_lesion_mask(self) -> bool:
        return any(view != "image" for view in self.views)

    def forward(self, image: torch.Tensor, lesion_mask: torch.Tensor | None = None) -> torch.Tensor:
        inputs = {"image": image}
        if self.needs_lesion_mask:
            if lesion_mask is None:
                raise ValueError("this readout reads some types from the lesion alone: pass lesion_mask "
                                 "(B, X, Y, Z), the lesions' voxels")
            mask = lesion_mask.unsqueeze(1).to(image.dtype)
            content = lesion_relative(image, mask) if self.relative else image * mask
            inputs.update(lesion=torch.cat([content, mask], dim=1), mask=mask)
        return torch.cat([cnn(inputs[view]) for view, cnn in zip(self.views, self.cnns)], dim=1)


class PerTypeMLP(nn.Module):
    """T two-layer MLPs side by side: features (..., T * C) -> embeddings (..., T, D), type t's
    embedding computed from its own C channels only."""

    def __init__(self, num_types: int, in_per_type: int, hidden: int, out_dim: int):
        super().__init__()
        self.num_types, self.in_per_type = num_types, in_per_type
        self.w1 = nn.Parameter(torch.randn(num_types, in_per_type, hidden) / in_per_type ** 0.5)
        self.b1 = nn.Parameter(torch.zeros(num_types, hidden))
        self.w2 = nn.Parameter(torch.randn(num_types, hidden, out_dim) / hidden ** 0.5)
        self.b2 = nn.Parameter(torch.zeros(num_types, out_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features.reshape(*features.shape[:-1], self.num_types, self.in_per_type)
        h = nn.functional.gelu(torch.einsum("...tc,tch->...th", x, self.w1) + self.b1)
        return torch.einsum("...th,thd->...td", h, self.w2) + self.b2


class VoxelReadout(nn.Module):
    """per-voxel feature (..., C) -> attribute embedding (..., text_dim): a two-layer MLP, reading
    the backbone's per-voxel features or, with `local_in_channels`, a local CNN on the image.

    With `num_types` (needs the local CNN), one local CNN and one MLP per attribute type, and one
    embedding per type (..., T, text_dim), read only against that type's values. Why: with one
    network for all types, what one type learns is there for every other type to use, and on seen
    diseases a value of one type predicts the others (every seen dark lesion had a wall, so "dark"
    is as good a cue for "walled" as the wall itself). A type's own network is trained by that
    type's targets alone; its cheapest solution is the type's own cue, which is what carries over
    to a new combination."""

    def __init__(self, pixel_channels: int, hidden_dim: int, text_dim: int, local_in_channels: int | None = None,
                 num_types: int | None = None, lesion_only_types: Sequence[int] = (),
                 mask_only_types: Sequence[int] = (), lesion_relative: bool = False):
        super().__init__()
        if num_types and not local_in_channels:
            raise ValueError("a per-type voxel readout needs the local CNN (local_in_channels)")
        if (lesion_only_types or mask_only_types) and not num_types:
            raise ValueError("lesion-only and mask-only types need the per-type readout (num_types)")
        self.per_type = bool(num_types)
        if self.per_type:
            self.local = PerTypeLocal(local_in_channels, num_types, lesion_only_types, mask_only_types,
                                      lesion_relative)
            self.mlp = PerTypeMLP(num_types, PER_TYPE_CHANNELS, PER_TYPE_HIDDEN, text_dim)
            return
        self.local = local_appearance(local_in_channels) if local_in_channels else None
        width = LOCAL_CHANNELS if self.local is not None else pixel_channels
        self.mlp = nn.Sequential(nn.Linear(width, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, text_dim))

    @property
    def needs_lesion_mask(self) -> bool:
        """Whether `features` reads a lesion mask (some types read the lesion or its mask alone)."""
        return self.per_type and self.local.needs_lesion_mask

    def features(self, image: torch.Tensor, pixel: torch.Tensor | None,
                 lesion_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C', X, Y, Z): what the readout reads at each voxel. `lesion_mask` (B, X, Y, Z), the
        lesions' voxels, is needed (and only read) when some types read the lesion alone."""
        if self.local is None:
            return pixel
        return self.local(image, lesion_mask) if self.per_type else self.local(image)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(..., C) -> (..., text_dim), or (..., T, text_dim) for the per-type readout."""
        return self.mlp(features)

    def attribute_logits(self, features: torch.Tensor, bank: AttributeBank) -> torch.Tensor:
        """(..., C) -> logits (..., V) against the AttributeBank `bank`, whichever readout this is."""
        return bank.logits(self(features), per_type=self.per_type)

    def training_pairs(self, pixel: torch.Tensor, targets: Sequence,
                       per_lesion: int = VOXELS_PER_LESION) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings (M, D), or (M, T, D) per type, positives bool (M, V)) for up to `per_lesion`
        random voxels of every target lesion that has attribute values. pixel (B, C, X, Y, Z):
        `features(...)`; targets: LesionTargets."""
        feats, positives = [], []
        for b, target in enumerate(targets):
            for mask, values in zip(target.masks, target.attribute_targets):
                if not values.any():
                    continue
                where = mask.to(pixel.device).nonzero()  # (K, 3)
                if where.shape[0] == 0:
                    continue
                if where.shape[0] > per_lesion:
                    where = where[torch.randperm(where.shape[0], device=where.device)[:per_lesion]]
                feats.append(pixel[b, :, where[:, 0], where[:, 1], where[:, 2]].t())
                positives.append(values.to(pixel.device).bool().unsqueeze(0).expand(where.shape[0], -1))
        if not feats:  # keep the head in the graph (DDP) with an empty batch
            num_values = targets[0].attribute_targets.shape[1] if len(targets) else 0
            return self(pixel.new_zeros(0, pixel.shape[1])), torch.zeros(0, num_values, dtype=torch.bool,
                                                                             device=pixel.device)
        return self(torch.cat(feats)), torch.cat(positives)


def lesion_union(targets: Sequence, shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """(B, X, Y, Z) bool: every target lesion's voxels (the lesion-only readout's mask in training)."""
    union = torch.zeros(len(targets), *shape, dtype=torch.bool, device=device)
    for b, target in enumerate(targets):
        if target.num_lesions:
            union[b] = target.masks.to(device).any(0)
    return union
