"""Synthetic anomalies: where they go, what they change, and that they carry no attribute target."""
import pytest
import numpy as np
import torch
from scipy import ndimage

from nnunetv2_malenia.loss import multi_positive_nce
from nnunetv2_malenia.synthetic.shapes import sphericity
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
        masks = [a.mask for a in paste_anomalies(image, seg, {LESION}, room=4, cfg=always, intensity_unit=0.01,
                                                  clip=(-10.0, 10.0), rng=rng)]
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
    pasted = paste_anomalies(image, seg, {LESION}, 4, AnomalyConfig(probability=1.0), 1.0, (-0.3, 0.3), rng)
    assert pasted and image.min() >= -0.3 and image.max() <= 0.3


def test_described_blobs_name_what_their_drawing_makes_unambiguous():
    rng = np.random.default_rng(2)
    flat_sharp = AnomalyConfig(probability=1.0, heterogeneity=(0.0, 0.05), margin_blur_voxels=(0.0, 0.2),
                               irregularity=(0.0, 0.05), describe=True)
    for _ in range(10):
        image, seg = _phantom()
        for a in paste_anomalies(image, seg, {LESION}, 4, flat_sharp, 0.01, (-10, 10), rng):
            brighter = image[0][a.mask].mean() > 0
            assert set(a.properties) == {"brighter" if brighter else "darker", "flat", "sharp", "ellipsoid"}
    in_between = AnomalyConfig(probability=1.0, heterogeneity=(0.2, 0.3), margin_blur_voxels=(0.6, 0.8),
                               irregularity=(0.12, 0.2), describe=True)
    image, seg = _phantom()
    assert {a.properties[1:] for a in paste_anomalies(image, seg, {LESION}, 4, in_between, 0.01, (-10, 10), rng)} == {()}


def test_a_target_without_attribute_values_adds_nothing_to_the_alignment_loss():
    value_type = torch.tensor([0, 0, 1, 1, 1])
    g = torch.Generator().manual_seed(0)
    bank, z = torch.randn(5, 8, generator=g), torch.randn(3, 8, generator=g)
    pos = torch.tensor([[1, 0, 0, 1, 0], [0, 1, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)  # row 2: an anomaly
    with_anomaly = multi_positive_nce(z, pos, bank, value_type, 2, torch.tensor(10.0))
    without = multi_positive_nce(z[:2], pos[:2], bank, value_type, 2, torch.tensor(10.0))
    assert torch.allclose(with_anomaly, without)


def test_the_trainer_appends_anomalies_to_the_patch_targets_with_the_described_values():
    from types import SimpleNamespace

    from nnunetv2_malenia.knowledge import load_vocabulary
    from nnunetv2_malenia.loss.targets import LesionTargets
    from nnunetv2_malenia.training.nnUNetTrainerMalenia import nnUNetTrainerMalenia

    class Trainer:  # the three methods under test on a trainer without nnU-Net's setup
        _add_anomalies = nnUNetTrainerMalenia._add_anomalies
        _anomaly_vectors = nnUNetTrainerMalenia._anomaly_vectors

        def _anomaly_intensity(self):
            return 0.01, (-10.0, 10.0), None

    trainer = Trainer()
    trainer.vocabulary = vocabulary = load_vocabulary()
    trainer.knowledge = SimpleNamespace(lesion_labels=[LESION])
    trainer.max_lesions = 3
    trainer.anomalies = AnomalyConfig(probability=1.0, max_per_patch=2, heterogeneity=(0.0, 0.05), describe=True)
    trainer._anomaly_rng = np.random.default_rng(3)
    image, seg = _phantom()
    batch = {"data": torch.from_numpy(image[None].copy()), "target": [torch.from_numpy(seg[None, None].copy())]}
    lesion = LesionTargets(torch.from_numpy(seg == LESION)[None], torch.zeros(1, len(vocabulary.phrases), dtype=torch.bool))
    lesion.attribute_targets[0, 0] = True
    (out,) = trainer._add_anomalies(batch, [lesion])
    assert out.num_lesions in (2, 3)                               # the lesion, then one or two blobs
    assert torch.equal(out.masks[0], lesion.masks[0]) and torch.equal(out.attribute_targets[0], lesion.attribute_targets[0])
    homogeneous = vocabulary.value_index("density_variation", "homogeneous")
    density = {vocabulary.value_index("density", p) for p in ("hypodense lesion", "hyperdense lesion")}
    for row, mask in zip(out.attribute_targets[1:], out.masks[1:]):
        values = set(torch.nonzero(row).flatten().tolist())
        assert homogeneous in values and len(values & density) == 1
        assert batch["data"][0, 0][mask].abs().mean() > 0.3        # the blob is in the image the network sees
    assert torch.equal(batch["target"][0], torch.from_numpy(seg[None, None]))  # default: nnU-Net's target untouched


def test_label_in_head_marks_the_blobs_as_a_lesion_in_every_deep_supervision_target():
    from nnunetv2_malenia.training.nnUNetTrainerMalenia import mark_in_head_targets

    full = torch.zeros(2, 1, 8, 8, 8, dtype=torch.int16)
    half = torch.zeros(2, 1, 4, 4, 4, dtype=torch.int16)
    mask = np.zeros((8, 8, 8), dtype=bool)
    mask[2:6, 2:6, 2:6] = True
    mark_in_head_targets([full, half], 1, mask, 7)
    assert torch.equal(full[1, 0] == 7, torch.from_numpy(mask)) and (full[0] == 0).all()
    assert int((half[1, 0] == 7).sum()) == 8 and (half[0] == 0).all()   # the 2x2x2 block of a 4^3 map
    with pytest.raises(ValueError, match="label_in_head must be one of 'organ', 'lesion', 'own', got 'both'"):
        AnomalyConfig(label_in_head="both")


def test_feature_blobs_show_the_feature_they_are_named_by():
    """With feature_probability 1 every blob that can hold one gets one specific feature, and the
    image shows it (units: 1 HU = 0.01, flat sharp blobs on a zero image): calcium dots 300+ HU
    above the blob, darker areas 60+ HU below it, a rim 60+ HU above the interior."""
    cfg = AnomalyConfig(probability=1.0, max_per_patch=2, heterogeneity=(0.0, 0.05), margin_blur_voxels=(0.0, 0.0),
                        irregularity=(0.0, 0.05), describe=True, feature_probability=1.0)
    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(20):
        image, seg = _phantom()
        for blob in paste_anomalies(image, seg, {LESION}, 4, cfg, 0.01, (-100.0, 100.0), rng):
            hu = image[0] / 0.01
            feature = [p for p in blob.properties if p in ("calcified", "darker areas", "rim")]
            assert len(feature) == 1 and "plain" not in blob.properties
            body = np.median(hu[blob.mask])
            if feature == ["calcified"]:
                assert hu[blob.mask].max() >= body + 300 * 0.95
            elif feature == ["darker areas"]:
                assert hu[blob.mask].min() <= body - 60 * 0.95
            else:
                interior = ndimage.binary_erosion(blob.mask)
                assert hu[blob.mask & ~interior].mean() >= hu[interior].mean() + 60 * 0.9
            seen.add(feature[0])
    assert seen == {"calcified", "darker areas", "rim"}


def test_feature_blobs_draw_only_the_features_chosen():
    """`features` narrows the draw (a rim reads as any bright edge; docs/benchmarks.md): with
    calcium and darker areas only, no blob is named or drawn with a rim."""
    cfg = AnomalyConfig(probability=1.0, max_per_patch=2, describe=True, feature_probability=1.0,
                        features=("calcified", "darker areas"))
    rng = np.random.default_rng(5)
    named = [p for _ in range(20) for blob in paste_anomalies(*_phantom(), {LESION}, 4, cfg, 0.01, (-100.0, 100.0), rng)
             for p in blob.properties if p in ("calcified", "darker areas", "rim")]
    assert set(named) == {"calcified", "darker areas"}
    with pytest.raises(ValueError, match="features must be a non-empty selection of 'calcified', 'darker areas', "
                                         "'rim', got 'wall'"):
        AnomalyConfig(features=("calcified", "wall"))


def test_surface_blobs_reach_out_of_their_organ_with_the_organs_tissue_plus_their_offset():
    """A surface blob covers organ and background voxels (never another organ's), and outside the
    organ it shows the organ's CT number plus its offset, not the background's; at 0 no blob leaves
    its organ and the draws are those of a config without the field."""
    flat = dict(probability=1.0, max_per_patch=1, heterogeneity=(0.0, 0.0), margin_blur_voxels=(0.0, 0.0),
                irregularity=(0.0, 0.0), contrast=(50.0, 50.0))
    out_count = 0
    for seed in range(6):
        image, seg = _phantom()
        level = {ORGAN: 1.0, OTHER: 2.0}        # 100 and 200 HU (1 HU = 0.01), background 0
        for organ, value in level.items():
            image[0][seg == organ] = value
        rng = np.random.default_rng(seed)
        for blob in paste_anomalies(image, seg, {LESION}, 4, AnomalyConfig(**flat, surface_probability=1.0),
                                    0.01, (-10.0, 10.0), rng):
            host = ORGAN if (blob.mask & (seg == ORGAN)).any() else OTHER
            assert not (blob.mask & (seg == ORGAN + OTHER - host)).any() and not (blob.mask & (seg == LESION)).any()
            outside = blob.mask & (seg == 0)
            if outside.any():
                out_count += 1
                organ_part = image[0][blob.mask & (seg == host)]
                assert np.allclose(image[0][outside], organ_part.mean(), atol=1e-5)
                assert abs(organ_part.mean() - level[host]) == pytest.approx(0.5, abs=1e-5)
    assert out_count >= 3
    draws = []
    for cfg in (AnomalyConfig(**flat), AnomalyConfig(**flat, surface_probability=0.0)):
        image, seg = _phantom()
        blobs = paste_anomalies(image, seg, {LESION}, 4, cfg, 0.01, (-10.0, 10.0), np.random.default_rng(1))
        assert all(not (b.mask & (seg == 0)).any() for b in blobs)
        draws.append(image)
    assert np.array_equal(*draws)


def test_a_flat_blob_without_a_feature_has_no_specific_features_and_features_off_name_none():
    rng = np.random.default_rng(6)
    flat = dict(probability=1.0, heterogeneity=(0.0, 0.05), margin_blur_voxels=(0.0, 0.0), describe=True)
    image, seg = _phantom()
    blobs = [b for _ in range(10) for b in paste_anomalies(image, seg, {LESION}, 4,
                                                           AnomalyConfig(**flat, feature_probability=1e-9),
                                                           0.01, (-10.0, 10.0), rng)]
    assert blobs and all("plain" in b.properties for b in blobs)
    textured = AnomalyConfig(probability=1.0, heterogeneity=(0.5, 0.6), describe=True, feature_probability=1e-9)
    assert all("plain" not in b.properties for b in paste_anomalies(image, seg, {LESION}, 4, textured, 0.01,
                                                                     (-10.0, 10.0), rng))
    assert all(set(b.properties).isdisjoint({"plain", "calcified", "darker areas", "rim"})
               for b in paste_anomalies(image, seg, {LESION}, 4, AnomalyConfig(**flat), 0.01, (-10.0, 10.0), rng))
    with pytest.raises(ValueError, match="feature_probability must be in"):
        AnomalyConfig(feature_probability=1.5)


def test_tissue_blobs_take_an_absolute_ct_number_whatever_their_organ():
    # units: 1 HU = 0.01, 0 HU = 0.5; the organ is aerated lung (-850 HU), the other organ water (0 HU)
    tissue = AnomalyConfig(probability=1.0, max_per_patch=2, margin_blur_voxels=(0.0, 0.0),
                           heterogeneity=(0.0, 0.0), tissue_probability=1.0, tissue_hu=(40.0, 60.0))
    rng = np.random.default_rng(4)
    for _ in range(10):
        image, seg = _phantom()
        image[0][seg == ORGAN] = 0.5 - 8.5
        image[0][seg == OTHER] = 0.5
        for blob in paste_anomalies(image, seg, {LESION}, 4, tissue, 0.01, (-100.0, 100.0), rng, zero_hu=0.5):
            hu = (image[0][blob.mask] - 0.5) / 0.01
            assert np.allclose(hu, hu.mean(), atol=1e-2) and 40.0 <= hu.mean() <= 60.0   # soft tissue, in the lung too
            assert blob.properties[0] == "brighter"
    image, seg = _phantom()  # no absolute scale (zero_hu None): offsets as before
    blobs = paste_anomalies(image, seg, {LESION}, 4, tissue, 0.01, (-10.0, 10.0), rng)
    assert all(0.4 * 0.99 <= abs(image[0][b.mask].mean()) <= 1.6 * 1.01 for b in blobs)


def test_lobed_blobs_are_named_lobulated_and_their_outline_is_less_round_than_an_ellipsoid():
    """lobe_probability 1 draws every blob as smooth lobes named "lobulated" (never "ellipsoid" or
    "perturbed"); their outline is measurably less spherical than the unperturbed ellipsoids of the
    same config without lobes. lobe_probability 0 draws exactly what a config without the field did."""
    base = dict(probability=1.0, max_per_patch=1, radius_voxels=(5.0, 6.0), irregularity=(0.0, 0.0),
                margin_blur_voxels=(0.0, 0.0), heterogeneity=(0.0, 0.05), describe=True)
    rng = np.random.default_rng(7)
    shape_of = {}
    for name, cfg in (("lobed", AnomalyConfig(**base, lobe_probability=1.0)), ("ellipsoid", AnomalyConfig(**base))):
        blobs = []
        for _ in range(12):
            image, seg = _phantom()
            blobs += paste_anomalies(image, seg, {LESION}, 4, cfg, 0.01, (-10.0, 10.0), rng)
        assert len(blobs) >= 10
        assert all(name in b.properties and {"lobed", "ellipsoid", "perturbed"} & set(b.properties) == {name}
                   for b in blobs)
        shape_of[name] = np.median([sphericity(b.mask) for b in blobs])
    assert shape_of["lobed"] < shape_of["ellipsoid"] - 0.04, shape_of
    same = []
    for cfg in (AnomalyConfig(**base), AnomalyConfig(**base, lobe_probability=0.0)):
        image, seg = _phantom()
        same.append(paste_anomalies(image, seg, {LESION}, 4, cfg, 0.01, (-10.0, 10.0), np.random.default_rng(8))[0].mask)
    assert np.array_equal(*same)
    with pytest.raises(ValueError, match="lobe_probability must be in"):
        AnomalyConfig(lobe_probability=-0.1)
