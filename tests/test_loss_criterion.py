"""The criterion: every term reaches the masks, empty patches, every parameter gets a gradient."""
import pytest
import torch

from nnunetv2_malenia.loss import LesionTargets, LossWeights, MaleniaCriterion
from nnunetv2_malenia.network import MaleniaConfig, build_malenia_network
from nnunetv2_malenia.network.toy import random_vocabulary, unet_plans

CFG = MaleniaConfig(hidden_dim=16, num_tokens=5, num_heads=2, ffn_dim=16, fusion_layers=2, text_dim=8,
                    num_attribute_types=3)
VOCAB = (2, 3, 3)
V = sum(VOCAB)
SHAPE = (16, 16, 16)


def make_net():
    torch.manual_seed(0)
    p = unet_plans([4, 8, 8, 8], convs_per_stage=1)
    net = build_malenia_network(p["network_class_name"], p["arch_kwargs"], p["_kw_requires_import"], 1, 2, CFG, V)
    net.set_vocabulary(*random_vocabulary(VOCAB, CFG.text_dim))
    return net.train()


def lesion_targets(n):
    m = torch.zeros(n, *SHAPE, dtype=torch.bool)
    a = torch.zeros(n, V, dtype=torch.bool)
    for i in range(n):
        m[i, 2 + 5 * i:6 + 5 * i, 3:8, 4:9] = True
        a[i, [i % 2, 2 + i, 5, 6]] = True
    return LesionTargets(m, a)


def run(net, targets, criterion=None):
    criterion = criterion or MaleniaCriterion()
    out = net(torch.randn(len(targets), 1, *SHAPE), targets=targets, matcher=criterion.matcher)
    return out, criterion(out, targets)


TERMS = ["mask_bce", "mask_dice", "objectness", "contrastive", "seg_bce", "seg_dice"]


@pytest.mark.parametrize("term", TERMS)
def test_every_loss_term_reaches_its_predictions(term):
    weights = LossWeights(**{t: (1.0 if t == term else 0.0) for t in TERMS})
    net = make_net()
    out, losses = run(net, [lesion_targets(2), lesion_targets(1)], MaleniaCriterion(weights))
    assert losses[term] > 0
    layers = out["layers"]
    watched = {
        "mask_bce": [l.mask_embed for l in layers], "mask_dice": [l.mask_embed for l in layers],
        "objectness": [l.objectness for l in layers], "contrastive": [l.attr_embed for l in layers[1:]],
        "seg_bce": [out["cmki"].mask_m.query, out["cmki"].mask_t.query],
        "seg_dice": [out["cmki"].mask_m.query, out["cmki"].mask_t.query],
    }[term] + [out["pixel_features"]] * (term not in ("objectness", "contrastive"))
    grads = torch.autograd.grad(losses["loss"], watched)
    for g in grads:
        assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_contrastive_term_also_trains_the_temperature():
    net = make_net()
    _, losses = run(net, [lesion_targets(1)])
    losses["loss"].backward()
    assert net.attributes.logit_scale_log.grad.abs() > 0


@pytest.mark.parametrize("n_lesions", [0, 2])
def test_every_parameter_gets_a_finite_gradient(n_lesions):
    """DDP without find_unused_parameters: all Malenia parameters in the graph, also with no lesion."""
    net = make_net()
    out, losses = run(net, [lesion_targets(n_lesions), lesion_targets(0)])
    assert torch.isfinite(losses["loss"])
    if n_lesions == 0:
        assert losses["mask_bce"] == 0 and losses["contrastive"] == 0 and losses["seg_dice"] == 0
    losses["loss"].backward()
    missing = [n for n, p in net.named_parameters()
               if p.grad is None and ".seg_layers." not in n]  # nnU-Net's head: trained by the trainer's loss
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_runs_under_autocast():
    net = make_net()
    crit = MaleniaCriterion()
    tg = [lesion_targets(1)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(torch.randn(1, 1, *SHAPE), targets=tg, matcher=crit.matcher)
        losses = crit(out, tg)
    assert losses["loss"].dtype == torch.float32 and torch.isfinite(losses["loss"])
    losses["loss"].backward()
