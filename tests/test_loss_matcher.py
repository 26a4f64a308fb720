"""Hungarian matching: optimal against brute force, and the cost prefers the overlapping token."""
import itertools

import torch

from nnunetv2_malenia.loss import HungarianMatcher, LesionTargets
from nnunetv2_malenia.network.transformer_decoder import DecoderLayerOutput


def _layer(mask_embed, objectness):
    return DecoderLayerOutput(mask_embed=mask_embed, objectness=objectness,
                              attr_embed=torch.zeros(*objectness.shape, 4))


def test_matcher_is_optimal_on_brute_forced_case():
    g = torch.Generator().manual_seed(3)
    n_tok, n_gt, shape = 5, 3, (6, 6, 6)
    pixel = torch.randn(1, 4, *shape, generator=g)
    layer = _layer(torch.randn(1, n_tok, 4, generator=g), torch.randn(1, n_tok, generator=g))
    masks = torch.rand(n_gt, *shape, generator=g) > 0.7
    tg = [LesionTargets(masks, torch.zeros(n_gt, 7, dtype=torch.bool))]
    matcher = HungarianMatcher(downsample=1)
    cost = matcher.cost_matrices(layer, pixel, tg)[0]
    assert cost.shape == (n_tok, n_gt)
    best = min(sum(cost[p[j], j].item() for j in range(n_gt)) for p in itertools.permutations(range(n_tok), n_gt))
    (tok, gt), = matcher(layer, pixel, tg)
    assert sorted(gt.tolist()) == list(range(n_gt)) and len(set(tok.tolist())) == n_gt
    assert abs(cost[tok, gt].sum().item() - best) < 1e-5


def test_matcher_cost_values_and_overlap_preference():
    shape = (4, 4, 4)
    pixel = torch.zeros(1, 2, *shape)
    pixel[0, 0, :2] = 1.0  # channel 0 marks the first half, channel 1 the second
    pixel[0, 1, 2:] = 1.0
    embed = torch.tensor([[[10.0, -10.0], [-10.0, 10.0], [0.0, 0.0]]])
    layer = _layer(embed, torch.zeros(1, 3))
    masks = torch.zeros(2, *shape, dtype=torch.bool)
    masks[0, 2:], masks[1, :2] = True, True
    tg = [LesionTargets(masks, torch.zeros(2, 3, dtype=torch.bool))]
    (tok, gt), = HungarianMatcher(downsample=1)(layer, pixel, tg)
    assert dict(zip(gt.tolist(), tok.tolist())) == {0: 1, 1: 0}
    # hand-computed entry: token 2 predicts logit 0 everywhere -> BCE log 2, Dice 1 - (2*0.5*32+1)/(32+32+1)
    cost = HungarianMatcher(cost_bce=1, cost_dice=1, cost_objectness=1, downsample=1).cost_matrices(
        layer, pixel, tg)[0]
    expected = torch.log(torch.tensor(2.0)) + (1 - 33 / 65) - 0.5
    torch.testing.assert_close(cost[2, 0], expected)


def test_matcher_with_no_lesions():
    layer = _layer(torch.randn(2, 3, 2), torch.randn(2, 3))
    tg = [LesionTargets(torch.zeros(0, 4, 4, 4, dtype=torch.bool), torch.zeros(0, 3, dtype=torch.bool))] * 2
    out = HungarianMatcher()(layer, torch.randn(2, 2, 4, 4, 4), tg)
    assert all(t.numel() == 0 and g.numel() == 0 for t, g in out)
