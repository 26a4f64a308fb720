"""The class-agnostic "any lesion" loss on nnU-Net's head (loss/lesion_region.py) and its trainer wiring."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from nnunetv2_malenia.loss.lesion_region import lesion_region_loss

# labels: 0 background, 1 organ, 2 and 3 two lesion diseases
CHANNELS = torch.tensor([False, False, True, True])
LESIONS = torch.tensor([2, 3])


def _target() -> torch.Tensor:
    target = torch.ones(1, 1, 8, 8, 8, dtype=torch.int16)
    target[0, 0, 2:5, 2:5, 2:5] = 3
    return target


def _logits(lesion_channel: int, at_lesion: bool) -> torch.Tensor:
    """Confident organ everywhere, and `lesion_channel` confident inside the lesion if `at_lesion`."""
    logits = torch.zeros(1, 4, 8, 8, 8)
    logits[0, 1] = 6.0
    if at_lesion:
        logits[0, 1, 2:5, 2:5, 2:5] = 0.0
        logits[0, lesion_channel, 2:5, 2:5, 2:5] = 6.0
    return logits


def test_any_lesion_channel_on_the_lesion_is_right_whichever_disease():
    target = _target()
    right = lesion_region_loss(_logits(3, True), target, CHANNELS, LESIONS)
    other_disease = lesion_region_loss(_logits(2, True), target, CHANNELS, LESIONS)
    missed = lesion_region_loss(_logits(3, False), target, CHANNELS, LESIONS)
    assert torch.isclose(right, other_disease)      # class-agnostic: which lesion channel does not matter
    assert right < 0.1 < missed                     # a missed lesion costs, a found one does not


def test_the_gradient_raises_the_lesion_channels_at_the_lesion_and_nothing_when_no_case_is_kept():
    target = _target()
    logits = _logits(3, False).requires_grad_(True)
    lesion_region_loss(logits, target, CHANNELS, LESIONS).backward()
    inside = logits.grad[0, :, 3, 3, 3]
    assert inside[2] < 0 and inside[3] < 0 and inside[1] > 0    # descent raises the lesion channels there

    logits = _logits(3, False).requires_grad_(True)
    loss = lesion_region_loss(logits, target, CHANNELS, LESIONS, keep=torch.tensor([False]))
    loss.backward()
    assert loss.item() == 0.0 and not logits.grad.any()


def test_the_trainer_leaves_out_cases_whose_source_does_not_annotate_every_lesion_label():
    from nnunetv2_malenia.training.nnUNetTrainerMalenia import nnUNetTrainerMalenia

    class Trainer:  # the method under test on a trainer without nnU-Net's setup
        _lesion_region_loss = nnUNetTrainerMalenia._lesion_region_loss
        anomaly_label = None  # no synthetic anomalies with a head channel of their own

    trainer = Trainer()
    trainer.knowledge = SimpleNamespace(lesion_labels=[2, 3])
    target = torch.cat([_target(), _target()])
    logits = torch.cat([_logits(3, True), _logits(3, False)])   # case 2 misses its lesion
    batch = {"keys": ["a", "b"]}
    both = trainer._lesion_region_loss([logits, logits[:, :, ::2, ::2, ::2]], [target], batch)
    trainer.annotated_labels = SimpleNamespace(mask=lambda cases, n: np.array([[True] * n, [True, True, True, False]]))
    first_only = trainer._lesion_region_loss([logits], [target], batch)
    assert first_only < 0.1 < both                  # the miss in case b, whose source lacks label 3, is not taught


def test_the_bce_term_is_the_binary_cross_entropy_of_the_summed_lesion_probability():
    """Computed through log-sum-exps (CUDA autocast refuses F.binary_cross_entropy); same value."""
    torch.manual_seed(0)
    logits, target = torch.randn(2, 4, 6, 6, 6), torch.randint(0, 4, (2, 1, 6, 6, 6))
    mass = torch.softmax(logits, 1)[:, CHANNELS].sum(1)
    truth = (target[:, 0] >= 2).float()
    dice = 1 - (2 * (mass * truth).flatten(1).sum(1) + 1) / (mass.flatten(1).sum(1) + truth.flatten(1).sum(1) + 1)
    expected = dice.mean() + torch.nn.functional.binary_cross_entropy(mass, truth)
    assert torch.isclose(lesion_region_loss(logits, target, CHANNELS, LESIONS), expected, atol=1e-5)
