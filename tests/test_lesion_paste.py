"""Cross-organ lesion copy-paste (training/lesion_paste.py): what moves, where, and its targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnunetv2_malenia.training.lesion_paste import LesionPasteConfig, build_lesion_bank, paste_lesion, place_values

LIVER, KIDNEY, LUNG, LESION = 1, 2, 3, 10
UNIT = 0.01  # one HU in the image's units
ALWAYS = LesionPasteConfig(probability=1.0)


def _two_organs(kidney_value: float = 0.0, lesion: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(image (1, 40, 40, 40), segmentation): liver (1.0) on the left, kidney on the right and, in
    the liver, a lesion 0.5 darker than it with a texture."""
    seg = np.zeros((40, 40, 40), dtype=np.int16)
    seg[4:36, 4:36, 2:19] = LIVER
    seg[4:36, 4:36, 21:38] = KIDNEY
    image = np.full((1, 40, 40, 40), -1.0, dtype=np.float32)
    image[0][seg == LIVER], image[0][seg == KIDNEY] = 1.0, kidney_value
    if lesion:
        z, y, x = np.indices(seg.shape)
        ball = (z - 20) ** 2 + (y - 20) ** 2 + (x - 10) ** 2 <= 16
        seg[ball] = LESION
        texture = 0.1 * np.sin(z + y)
        image[0][ball] = (0.5 + texture)[ball]
    return image, seg


def _bank(image: np.ndarray, seg: np.ndarray, cfg: LesionPasteConfig = ALWAYS, vector_size: int = 6) -> list:
    def attributes_of(case: str, label: int) -> np.ndarray:
        return np.ones(vector_size, dtype=bool)

    cleared = np.zeros(vector_size, dtype=bool)
    cleared[:2] = True  # the place types' values
    return build_lesion_bank([("case_0", image, seg)], [LESION], attributes_of, cleared, cfg)


def test_a_lesion_moves_into_another_organ_with_its_density_relative_to_the_host_and_its_texture():
    (banked,) = _bank(*_two_organs())
    assert (banked.label, banked.organ, banked.host[0]) == (LESION, LIVER, 1.0)
    assert banked.attributes.tolist() == [False, False, True, True, True, True]   # no location, no relationship
    image, seg = _two_organs(kidney_value=0.2, lesion=False)
    hit = paste_lesion(image, seg, {LESION}, [banked], ALWAYS, UNIT, (-5.0, 5.0), np.random.default_rng(0))
    assert hit is not None
    lesion, placed = hit
    assert placed.sum() == banked.mask.sum() and (seg[placed] == KIDNEY).all()     # all of it, in the kidney
    inside = image[0][placed]
    assert inside.mean() == pytest.approx(0.2 - 0.5, abs=0.02)                       # 0.5 below its new host
    assert inside.std() == pytest.approx(banked.image[0][banked.mask].std(), abs=1e-4)   # its own texture
    assert (image[0][seg == LIVER] == 1.0).all()                                     # nothing else touched


def test_a_zoomed_lesion_moves_larger_with_its_density_relative_to_the_host():
    (banked,) = _bank(*_two_organs())
    image, seg = _two_organs(kidney_value=0.2, lesion=False)
    grown = LesionPasteConfig(probability=1.0, scale=(1.5, 1.5))
    hit = paste_lesion(image, seg, {LESION}, [banked], grown, UNIT, (-5.0, 5.0), np.random.default_rng(0))
    assert hit is not None
    _, placed = hit
    assert placed.sum() / banked.mask.sum() == pytest.approx(1.5 ** 3, rel=0.25)     # about 3.4 times the voxels
    assert (seg[placed] == KIDNEY).mean() >= grown.min_inside                        # mostly in the kidney
    assert image[0][placed].mean() == pytest.approx(0.2 - 0.5, abs=0.05)              # still 0.5 below its host
    assert (image[0][seg == LIVER] == 1.0).all()


def test_no_lesion_moves_between_hosts_too_far_apart_or_without_another_organ():
    (banked,) = _bank(*_two_organs())
    rng = np.random.default_rng(0)
    aerated, seg = _two_organs(kidney_value=-8.5, lesion=False)    # -850 HU: the lesion's density was against liver
    assert paste_lesion(aerated, seg, {LESION}, [banked], ALWAYS, UNIT, (-10.0, 10.0), rng) is None
    image, seg = _two_organs(lesion=False)
    seg[seg == KIDNEY] = 0
    assert paste_lesion(image, seg, {LESION}, [banked], ALWAYS, UNIT, (-5.0, 5.0), rng) is None   # only its own organ
    image, seg = _two_organs(lesion=False)
    assert paste_lesion(image, seg, {LESION}, [banked], LesionPasteConfig(probability=0.0), UNIT, (-5.0, 5.0), rng) is None
    assert paste_lesion(image, seg, {LESION}, [banked], ALWAYS, UNIT, (-5.0, 5.0), rng, allowed=lambda label: False) is None


def test_a_lesion_is_not_pasted_over_or_next_to_the_patch_own_lesions():
    (banked,) = _bank(*_two_organs())
    image, seg = _two_organs(lesion=False)
    seg[4:36, 4:36, 21:38][:, :, ::3] = LESION + 1   # kidney striped with another lesion label: no room
    rng = np.random.default_rng(1)
    assert all(paste_lesion(image, seg, {LESION, LESION + 1}, [banked], ALWAYS, UNIT, (-5.0, 5.0), rng) is None
               for _ in range(5))


def test_the_trainer_appends_the_pasted_lesion_with_its_values_and_its_label_in_nnunet_target():
    from types import SimpleNamespace

    from nnunetv2_malenia.loss.targets import LesionTargets
    from nnunetv2_malenia.training.nnUNetTrainerMalenia import nnUNetTrainerMalenia

    class Trainer:  # the method under test on a trainer without nnU-Net's setup
        _add_pasted_lesions = nnUNetTrainerMalenia._add_pasted_lesions

        def _anomaly_intensity(self):
            return UNIT, (-5.0, 5.0), None

    trainer = Trainer()
    trainer.knowledge = SimpleNamespace(lesion_labels=[LESION])
    trainer.max_lesions = 3
    trainer.lesion_paste = ALWAYS
    trainer._anomaly_rng = np.random.default_rng(0)
    trainer._lesion_bank = _bank(*_two_organs())
    trainer._pasted = np.zeros(2)
    image, seg = _two_organs(lesion=False)
    half = torch.zeros(1, 1, 20, 20, 20, dtype=torch.int16)
    batch = {"data": torch.from_numpy(image[None].copy()), "keys": ["case_1"],
             "target": [torch.from_numpy(seg[None, None].copy()), half]}
    empty = LesionTargets(torch.zeros(0, 40, 40, 40, dtype=torch.bool), torch.zeros(0, 6, dtype=torch.bool))
    (out,) = trainer._add_pasted_lesions(batch, [empty])
    assert out.num_lesions == 1 and out.attribute_targets[0].tolist() == [False, False, True, True, True, True]
    assert torch.equal(batch["target"][0][0, 0] == LESION, out.masks[0])   # nnU-Net's target: its own label
    assert (half[0, 0] == LESION).any()                                        # at every deep supervision scale
    assert (batch["data"][0, 0][out.masks[0]] < 0).all()                       # and in the image: darker than the kidney
    assert trainer._pasted.tolist() == [1, 1]                                  # counted for the epoch's log line

    trainer.annotated_labels = SimpleNamespace(mask=lambda cases, n: np.array([[True, True, True] + [False] * (n - 3)]))
    trainer.label_manager = SimpleNamespace(num_segmentation_heads=LESION + 1)
    image, seg = _two_organs(lesion=False)
    batch = {"data": torch.from_numpy(image[None].copy()), "keys": ["case_1"],
             "target": torch.from_numpy(seg[None, None].copy())}
    (out,) = trainer._add_pasted_lesions(batch, [empty])   # a source that leaves the lesion label unannotated
    assert out.num_lesions == 0 and not (batch["target"] == LESION).any()


def test_a_moved_lesion_gets_no_target_for_where_it_was_or_the_phase_of_its_scan():
    from nnunetv2_malenia.knowledge import load_vocabulary

    vocabulary = load_vocabulary()
    cleared = place_values(vocabulary, LesionPasteConfig())
    types = {vocabulary.type_keys[t] for t, c in zip(vocabulary.value_type, cleared) if c}
    assert types == {"location", "relationship", "enhancement_status"}
    kept = place_values(vocabulary, LesionPasteConfig(place_types=("location",)))
    assert kept.sum() == sum(1 for t in vocabulary.value_type if vocabulary.type_keys[t] == "location")


def test_a_bad_config_names_the_field():
    with pytest.raises(ValueError, match=r"LesionPasteConfig.probability must be in \[0, 1\], got 1.5"):
        LesionPasteConfig(probability=1.5)
    with pytest.raises(ValueError, match="halo_voxels must be >= 0 and min_voxels >= 1, got -1 and 30"):
        LesionPasteConfig(halo_voxels=-1)
    with pytest.raises(ValueError, match=r"LesionPasteConfig.min_inside must be in \(0, 1\], got 0.0"):
        LesionPasteConfig(min_inside=0.0)
    with pytest.raises(ValueError, match=r"LesionPasteConfig.scale must be \(low, high\) with 0 < low <= high, got \(1.6, 1.0\)"):
        LesionPasteConfig(scale=(1.6, 1.0))
