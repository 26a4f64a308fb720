"""MP-NCE against a hand-computed value; per-type negatives; empty and padded rows."""
import math

import torch
import torch.nn.functional as F

from nnunetv2_malenia.loss import multi_positive_nce

VALUE_TYPE = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])  # type 2 is multi-valued


def test_matches_hand_computed_value():
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(8, 5, generator=g)
    z = torch.randn(2, 5, generator=g)
    pos = torch.zeros(2, 8, dtype=torch.bool)
    pos[0, [1, 3, 5, 7]] = True   # lesion 0: two values of the multi-valued type
    pos[1, [0, 4, 6]] = True
    scale = torch.tensor(1 / 0.07)
    loss = multi_positive_nce(z, pos, bank, VALUE_TYPE, 3, scale)

    zn, bn = F.normalize(z, dim=-1), F.normalize(bank, dim=-1)
    rows = []
    for i in range(2):
        s = [scale.item() * float(zn[i] @ bn[v]) for v in range(8)]
        terms = []
        for p in range(8):
            if not pos[i, p]:
                continue
            negs = [v for v in range(8) if VALUE_TYPE[v] == VALUE_TYPE[p] and not pos[i, v]]
            denom = math.exp(s[p]) + sum(math.exp(s[n]) for n in negs)
            terms.append(-math.log(math.exp(s[p]) / denom))
        rows.append(sum(terms) / len(terms))
    assert abs(loss.item() - sum(rows) / 2) < 1e-4


def test_other_types_and_co_positives_are_not_negatives():
    g = torch.Generator().manual_seed(1)
    bank = torch.randn(8, 5, generator=g)
    z = torch.randn(1, 5, generator=g)
    pos = torch.zeros(1, 8, dtype=torch.bool)
    pos[0, [0, 3, 5, 6]] = True
    base = multi_positive_nce(z, pos, bank, VALUE_TYPE, 3, torch.tensor(10.0))
    # make value 6 (a co-positive of 5) very similar to z: as a negative it would raise l(5) sharply
    bank2 = bank.clone()
    bank2[6] = z[0] * 5
    moved = multi_positive_nce(z, pos, bank2, VALUE_TYPE, 3, torch.tensor(10.0))
    # only l(6) itself changes (it drops); l(5) would rise if 6 were a negative of 5
    assert moved < base


def test_empty_and_padded_rows_give_finite_zero_and_gradients():
    bank = torch.randn(8, 5)
    z = torch.randn(0, 5, requires_grad=True)
    scale = torch.tensor(14.0, requires_grad=True)
    loss = multi_positive_nce(z, torch.zeros(0, 8, dtype=torch.bool), bank, VALUE_TYPE, 3, scale)
    loss.backward()
    assert loss.item() == 0.0 and scale.grad is not None and torch.isfinite(scale.grad)
    z = torch.randn(3, 5, requires_grad=True)
    pos = torch.zeros(3, 8, dtype=torch.bool)
    pos[0, [0, 3, 5]] = True
    pos[1, [1, 4, 7]] = True
    valid = torch.tensor([True, False, False])
    padded = multi_positive_nce(z, pos, bank, VALUE_TYPE, 3, torch.tensor(14.0), valid)
    alone = multi_positive_nce(z[:1], pos[:1], bank, VALUE_TYPE, 3, torch.tensor(14.0))
    torch.testing.assert_close(padded, alone)
    padded.backward()
    assert torch.isfinite(z.grad).all() and z.grad[1:].abs().sum() == 0
