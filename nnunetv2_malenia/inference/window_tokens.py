"""What the tokens said in each sliding window, kept from nnU-Net's own prediction pass.

A lesion report needs the token that made the lesion: its attribute readout, disease scores and
objectness. Those exist in every window nnU-Net's sliding-window predictor runs, so the predictor
keeps them as it goes (`WindowRecorder`, fed by ZeroShotPredictor) instead of running the network
again per lesion. Per window it keeps the per-token vectors (small), each token mask's total over
the window, and the token masks only on the window's candidate lesion voxels: those where the
window's own output gives the lesion labels together at least `CANDIDATE_MASS`. A voxel the final
label map calls a lesion has at least 1/num_labels there in some window (in every window, if the
image is one window), so memory scales with lesion volume, not with tokens x image.

After the pass, each lesion (a connected component of the label map) is scored against every
window that contains part of it: the token with the best soft Dice between its mask and the
lesion's voxels in that window speaks for the lesion. On an image that fits one window this is
exactly the token the earlier per-lesion pass chose.

A model that names lesion voxels by its per-voxel readout (`lesion_naming="voxel"`) also gets
that readout kept, on the voxels it was computed for (where the lesion mass reaches
VOXEL_NAMING_MIN_MASS): per voxel p(value) (V) and p(disease) (D). The report of such a model reads
the lesion from them, since they, not a token, named it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

CANDIDATE_MASS = 0.01


@dataclass
class WindowTokens:
    """One window's tokens. `region`: the window's part inside the image, in image coordinates;
    `candidates`: flat indices into `region` of its candidate lesion voxels, `candidate_masks`
    (N, K): every token's mask there."""

    region: tuple[slice, ...]
    objectness: np.ndarray          # (N,)
    attribute_probs: np.ndarray     # (N, T, V)
    disease_given_token: np.ndarray  # (N, D)
    mask_total: np.ndarray          # (N,) sum of each token's mask over `region`
    candidates: np.ndarray          # (K,)
    candidate_masks: np.ndarray     # (N, K)
    # voxel-named models: flat indices into `region` of the voxels the per-voxel readout read, and
    # there p(value) (M, V; each type's values sum to 1) and p(disease) (M, D); empty otherwise
    voxel_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    voxel_value_probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    voxel_disease: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))

    @classmethod
    def from_details(cls, details: dict, region: tuple[slice, ...], inside: tuple[slice, ...],
                     lesion_labels: torch.Tensor, candidate_mass: float = CANDIDATE_MASS) -> "WindowTokens":
        """`details` of one window (batch of one) from MaleniaNetwork.predict_details; `inside`:
        the part of the window that is image (not padding), in window coordinates; `lesion_labels`:
        the output labels of the table's diseases."""
        window = (slice(None), *inside)
        probs = details["token_probs"][0][window].float().flatten(1)
        lesion_mass = details["log_probs"][0][window][lesion_labels.to(probs.device)].float().exp().sum(0).flatten()
        candidates = torch.nonzero(lesion_mass >= candidate_mass).flatten()
        tokens = cls(region, details["objectness"][0].float().cpu().numpy(),
                     details["attribute_probs"][0].float().cpu().numpy(),
                     details["disease_given_token"][0].float().cpu().numpy(), probs.sum(1).cpu().numpy(),
                     candidates.cpu().numpy(), probs[:, candidates].cpu().numpy())
        if "voxel_where" in details:
            tokens.voxel_indices, tokens.voxel_value_probs, tokens.voxel_disease = _voxel_readout(details, inside)
        return tokens

    def best_token(self, lesion: np.ndarray) -> tuple[int, float]:
        """(token, soft Dice) of the token overlapping `lesion` (a boolean image) best in this window."""
        inside = lesion[self.region].ravel()
        overlap = self.candidate_masks[:, inside[self.candidates]].sum(1)
        dice = 2 * overlap / (self.mask_total + float(inside.sum()) + 1e-6)
        token = int(dice.argmax())
        return token, float(dice[token])


def _voxel_readout(details: dict, inside: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-voxel readout of the window's first case inside the image: (flat indices into the
    inside part, p(value) (M, V), p(disease) (M, D))."""
    where = details["voxel_where"]
    row = torch.full(where.shape, -1, dtype=torch.long, device=where.device)
    row[where] = torch.arange(int(where.sum()), device=where.device)  # the readout's row of each voxel
    row = row[0][inside].flatten()
    indices = torch.nonzero(row >= 0).flatten()
    values = details["voxel_attribute_probs"][row[indices]].float().sum(-2)  # (M, V): types do not share values
    disease = details["voxel_disease"][0][(slice(None), *inside)].flatten(1)[:, indices].t().float()
    return indices.cpu().numpy(), values.cpu().numpy(), disease.cpu().numpy()


class WindowRecorder:
    """Collects WindowTokens while nnU-Net's predictor runs its sliding window over one case.

    nnU-Net pads an image smaller than the patch (half the padding before, as acvl_utils'
    pad_nd_image does), then visits its slicers in order; the predictor calls `start_pass` with the
    padded shape and the slicers, then `add` once per window with that window's details.
    """

    def __init__(self, image_shape: tuple[int, ...], lesion_labels: torch.Tensor,
                 candidate_mass: float = CANDIDATE_MASS):
        self.image_shape = tuple(int(s) for s in image_shape)
        self.lesion_labels = torch.as_tensor(lesion_labels, dtype=torch.long)
        self.candidate_mass = float(candidate_mass)
        self.windows: list[WindowTokens] = []
        self._pending: list[tuple[tuple[slice, ...], tuple[slice, ...]]] = []

    def start_pass(self, padded_shape: tuple[int, ...], slicers: list[tuple]) -> None:
        pad_before = [(p - s) // 2 for p, s in zip(padded_shape, self.image_shape)]
        self._pending = []
        for slicer in slicers:
            spatial = slicer[-len(self.image_shape):]
            region, inside = [], []
            for sl, before, size in zip(spatial, pad_before, self.image_shape):
                lo, hi = max(sl.start - before, 0), min(sl.stop - before, size)
                region.append(slice(lo, hi))
                inside.append(slice(lo + before - sl.start, hi + before - sl.start))
            self._pending.append((tuple(region), tuple(inside)))

    def add(self, details: dict) -> None:
        if not self._pending:
            raise RuntimeError("WindowRecorder.add without a pending window: start_pass was not called")
        region, inside = self._pending.pop(0)
        self.windows.append(WindowTokens.from_details(details, region, inside, self.lesion_labels,
                                                      self.candidate_mass))

    def best_token(self, lesion: np.ndarray) -> tuple[WindowTokens, int] | None:
        """The (window, token) that speaks for `lesion` (boolean image): best soft Dice over windows."""
        best, found = -1.0, None
        for window in self.windows:
            if not lesion[window.region].any():
                continue
            token, dice = window.best_token(lesion)
            if dice > best:
                best, found = dice, (window, token)
        return found

    def voxel_readout(self, lesion: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The per-voxel readout over `lesion` (boolean image), averaged over its read voxels in
        every window: (p(value) (V), p(disease) (D)); None where no window read any of its voxels
        (a model that names by tokens, or a lesion outside the voxels it read)."""
        values, diseases = [], []
        for window in self.windows:
            if window.voxel_indices.size == 0 or not lesion[window.region].any():
                continue
            hit = lesion[window.region].ravel()[window.voxel_indices]
            values.append(window.voxel_value_probs[hit])
            diseases.append(window.voxel_disease[hit])
        if not values or sum(len(v) for v in values) == 0:
            return None
        return np.concatenate(values).mean(0), np.concatenate(diseases).mean(0)

    def case_scores(self, disease_names: list[str]) -> dict[str, float]:
        """Per table row, how strongly some token says the disease is in the case: the maximum over
        windows and tokens of objectness x p(disease | token) (0 with no window)."""
        best = np.zeros(len(disease_names))
        for window in self.windows:
            if window.disease_given_token.size:
                best = np.maximum(best, (window.objectness[:, None] * window.disease_given_token).max(0))
        return {name: float(score) for name, score in zip(disease_names, best)}
