"""Synthetic anomalies: where they go, what they change, and that they carry no attribute target."""
import numpy as np
import torch

from nnunetv2_malenia.loss import multi_positive_nce
from nnunetv2_malenia.training.synthetic_anomalies import AnomalyConfig, paste_anomalies

ORGAN, LESION, OTHER = 1, 5, 2


def _phantom():
    seg = np.zeros((32, 32, 32), dtype=np.int16)
    seg[4:28, 4:28, 4:20] = ORGAN
    seg[4:28, 4:28, 22:30] = OTHER
    seg[8:13, 8:13, 8:13] = LESION
    image = np.zeros((1, 32, 32, 32), dtype=np.float32)
    return image, seg


def test_blobs_sit_inside_organs_away_from_lesions_and_change_only_their_surroundings():
    always = AnomalyConfig(probability=1.0, max_per_patch=2, margin_blur_voxels=(0.0, 0.0))
    rng = np.random.default_rng(0)
    pasted = 0
    for _ in range(20):
        image, seg = _phantom()
        masks = paste_anomalies(image, seg, {LESION}, room=4, cfg=always, intensity_unit=0.01,
                                clip=(-10.0, 10.0), rng=rng)
        assert 1 <= len(masks) <= 2
        for mask in masks:
            assert mask.sum() >= always.min_voxels
            hosts = np.unique(seg[mask])
            assert len(hosts) == 1 and hosts[0] in (ORGAN, OTHER)   # one organ, never a lesion or background
        union = np.any(masks, axis=0)
        assert np.all(image[0][~union] == 0)                        # no blur: nothing changes outside the blobs
        offsets = np.abs([image[0][m].mean() for m in masks])
        assert np.all((offsets >= 0.4 * 0.5) & (offsets <= 1.6 * 1.5))  # contrast 40-160 x unit 0.01 (+ texture)
        pasted += len(masks)
    assert pasted > 20   # sometimes two


def test_no_blob_without_room_or_by_chance_and_values_stay_in_the_clip_range():
    image, seg = _phantom()
    rng = np.random.default_rng(1)
    assert paste_anomalies(image, seg, {LESION}, 0, AnomalyConfig(probability=1.0), 0.01, (-1, 1), rng) == []
    assert paste_anomalies(image, seg, {LESION}, 4, AnomalyConfig(probability=0.0), 0.01, (-1, 1), rng) == []
    assert np.all(image == 0)
    masks = paste_anomalies(image, seg, {LESION}, 4, AnomalyConfig(probability=1.0), 1.0, (-0.3, 0.3), rng)
    assert masks and image.min() >= -0.3 and image.max() <= 0.3


def test_a_target_without_attribute_values_adds_nothing_to_the_alignment_loss():
    value_type = torch.tensor([0, 0, 1, 1, 1])
    g = torch.Generator().manual_seed(0)
    bank, z = torch.randn(5, 8, generator=g), torch.randn(3, 8, generator=g)
    pos = torch.tensor([[1, 0, 0, 1, 0], [0, 1, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)  # row 2: an anomaly
    with_anomaly = multi_positive_nce(z, pos, bank, value_type, 2, torch.tensor(10.0))
    without = multi_positive_nce(z[:2], pos[:2], bank, value_type, 2, torch.tensor(10.0))
    assert torch.allclose(with_anomaly, without)
