"""The marginal Dice+CE (loss/marginal.py): nnU-Net's loss when every label is annotated, and blind to
how probability moves between background and a class a case's source does not annotate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from nnunetv2.training.loss.compound_losses import DC_and_BCE_loss, DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

from nnunetv2_malenia.datasets.annotated_labels import AnnotatedLabels, load_annotated_labels
from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.loss.marginal import MarginalDCandCELoss, PartialLabelLoss, marginal_log_probs

NUM_CLASSES = 4  # background, liver, liver tumor, kidney
UNANNOTATED = 3  # sample 0 (a liver case) does not annotate the kidney


def nnunet_loss(batch_dice: bool) -> DC_and_CE_loss:
    """The loss nnUNetTrainer._build_loss builds for plain integer labels."""
    return DC_and_CE_loss({"batch_dice": batch_dice, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                          weight_ce=1, weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)


def batch(seed: int = 0, shape=(2, NUM_CLASSES, 5, 6, 7)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits, a target without the unannotated class in sample 0, and the annotated mask."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    target = torch.randint(0, NUM_CLASSES, (shape[0], 1, *shape[2:]), generator=g).double()
    target[0][target[0] == UNANNOTATED] = 0  # a liver case's label map never holds a kidney
    annotated = torch.ones(shape[0], NUM_CLASSES, dtype=torch.bool)
    annotated[0, UNANNOTATED] = False
    return logits, target, annotated


@pytest.mark.parametrize("batch_dice", [True, False])
def test_every_label_annotated_equals_nnunets_dc_and_ce(batch_dice):
    logits, target, _ = batch()
    every = torch.ones(2, NUM_CLASSES, dtype=torch.bool)
    reference_input = logits.clone().requires_grad_()
    reference = nnunet_loss(batch_dice)(reference_input, target)
    reference.backward()
    for annotated in (every, None):
        ours_input = logits.clone().requires_grad_()
        ours = MarginalDCandCELoss(nnunet_loss(batch_dice))(ours_input, target, annotated)
        ours.backward()
        assert torch.allclose(ours, reference, atol=1e-6, rtol=1e-6), (ours, reference)
        assert torch.allclose(ours_input.grad, reference_input.grad, atol=1e-6)


def test_deep_supervision_with_a_target_per_scale_equals_nnunets():
    """nnU-Net's format: a list of outputs and a list of targets, one per scale."""
    logits, target, _ = batch()
    outputs = [logits, logits[:, :, ::2, ::2, ::2]]
    targets = [target, target[:, :, ::2, ::2, ::2]]
    weights = [2 / 3, 1 / 3]
    reference = DeepSupervisionWrapper(nnunet_loss(True), weights)(outputs, targets)
    partial = PartialLabelLoss(DeepSupervisionWrapper(nnunet_loss(True), weights))
    assert torch.allclose(partial(outputs, targets), reference, atol=1e-6)
    partial.annotated = torch.ones(2, NUM_CLASSES, dtype=torch.bool)
    assert torch.allclose(partial(outputs, targets), reference, atol=1e-6)


def test_unannotated_probability_is_merged_into_background():
    logits, _, annotated = batch()
    p = torch.softmax(logits, 1)
    merged = marginal_log_probs(logits, annotated).exp()
    assert torch.allclose(merged[0, 0], p[0, 0] + p[0, UNANNOTATED])
    assert torch.all(merged[0, UNANNOTATED] == 0)
    assert torch.allclose(merged[0, 1:UNANNOTATED], p[0, 1:UNANNOTATED])
    assert torch.allclose(merged[1], p[1])  # sample 1 annotates everything
    assert torch.allclose(merged.sum(1), torch.ones_like(merged[:, 0]))


def _move_mass(logits: torch.Tensor, sample: int, to_class: int, fraction: float) -> torch.Tensor:
    """Logits where `fraction` of background's probability went to `to_class`, all else unchanged."""
    moved = logits.clone()
    z_bg, z_c = logits[sample, 0], logits[sample, to_class]
    total = torch.logaddexp(z_bg, z_c)
    p_bg = torch.exp(z_bg - total)
    new_bg = p_bg * (1 - fraction)
    moved[sample, 0] = total + torch.log(new_bg)
    moved[sample, to_class] = total + torch.log(1 - new_bg)
    return moved


@pytest.mark.parametrize("batch_dice", [True, False])
def test_loss_ignores_mass_moving_between_background_and_an_unannotated_class(batch_dice):
    logits, target, annotated = batch(seed=1)
    moved = _move_mass(logits, 0, UNANNOTATED, 0.7)
    assert torch.allclose(torch.softmax(moved, 1)[0, 1:UNANNOTATED], torch.softmax(logits, 1)[0, 1:UNANNOTATED])
    loss = MarginalDCandCELoss(nnunet_loss(batch_dice))
    assert torch.allclose(loss(moved, target, annotated), loss(logits, target, annotated), atol=1e-6)
    # nnU-Net's own loss does care: the liver case's kidney voxels are background to it
    plain = nnunet_loss(batch_dice)
    assert plain(moved, target) - plain(logits, target) > 1e-2
    # and so does the marginal loss for a class the case annotates
    moved_annotated = _move_mass(logits, 0, 1, 0.7)
    assert not torch.allclose(loss(moved_annotated, target, annotated), loss(logits, target, annotated), atol=1e-4)


def test_gradient_does_not_push_mass_between_background_and_an_unannotated_class():
    """Relative gradient dL/dz_c / p_c is the same for background and the unannotated class: the
    loss depends on them only through p_bg + p_c, so no step favours one over the other."""
    logits, target, annotated = batch(seed=2)
    x = logits.clone().requires_grad_()
    MarginalDCandCELoss(nnunet_loss(True))(x, target, annotated).backward()
    p = torch.softmax(logits, 1)
    relative = x.grad / p
    assert torch.allclose(relative[0, UNANNOTATED], relative[0, 0], atol=1e-12)
    assert not torch.allclose(relative[1, UNANNOTATED], relative[1, 0], atol=1e-6)  # annotated in sample 1
    assert torch.isfinite(x.grad).all()


def test_partial_label_loss_rejects_region_losses():
    regions = DC_and_BCE_loss({}, {"batch_dice": True, "do_bg": True, "smooth": 1e-5, "ddp": False},
                              dice_class=MemoryEfficientSoftDiceLoss)
    with pytest.raises(MaleniaError, match="partial labels need nnU-Net's Dice\\+CE loss over plain integer labels; "
                                           "this trainer uses DC_and_BCE_loss"):
        PartialLabelLoss(regions)


def test_annotated_mask_per_case_and_file_errors(tmp_path):
    annotated = AnnotatedLabels({"liver_0": frozenset({1, 2}), "case_00000": frozenset({3})})
    mask = annotated.mask(["case_00000", "liver_0", "test_case"], NUM_CLASSES)
    assert mask.tolist() == [[True, False, False, True], [True, True, True, False], [True] * 4]
    path = tmp_path / "annotated_labels.json"
    annotated.save(path)
    assert load_annotated_labels(path, labels=[1, 2, 3]).cases == annotated.cases
    path.write_text(json.dumps({"schema_version": 1, "cases": {"liver_0": [1, 7]}}))
    with pytest.raises(MaleniaError, match=r"annotated_labels.json: case 'liver_0' lists label 7, which dataset.json "
                                           r"'labels' does not name"):
        load_annotated_labels(path, labels=[1, 2, 3])
    path.write_text(json.dumps({"schema_version": 1, "cases": {"liver_0": "1,2"}}))
    with pytest.raises(MaleniaError, match="case 'liver_0': expected a list of positive label values, found '1,2'"):
        load_annotated_labels(path)
    assert np.array_equal(AnnotatedLabels({}).mask(["a"], 2), [[True, True]])
