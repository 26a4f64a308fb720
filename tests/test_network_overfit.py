"""End to end: overfit one synthetic patch with two lesions of different attributes.

Trains network + criterion on a 32^3 patch (tiny widths), then checks the eval-mode output that
nnU-Net's predictor would use (Dice per disease label > 0.9) and the attribute values predicted
for each lesion. Early exit once both hold; the step budget bounds the run.
"""
import torch

from nnunetv2_malenia.loss import LesionTargets, MaleniaCriterion
from nnunetv2_malenia.network import MaleniaConfig, build_malenia_network
from nnunetv2_malenia.network.toy import random_vocabulary, unet_plans

MAX_STEPS = 90
# types: shape (round, irregular, lobulated), density (hypo, iso, hyper), features (multi-valued)
VOCAB = (3, 3, 3)
V = sum(VOCAB)


def _patch(size=32):
    g = torch.stack(torch.meshgrid(*[torch.arange(size)] * 3, indexing="ij")).float()
    sphere = ((g - 10.0) ** 2).sum(0) <= 36
    box = torch.zeros(size, size, size, dtype=torch.bool)
    box[18:27, 16:28, 19:26] = True
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 1, size, size, size, generator=gen) * 0.3
    x[0, 0][sphere] += 2.0
    x[0, 0][box] -= 2.0
    attrs = torch.zeros(2, V, dtype=torch.bool)
    attrs[0, [0, 5, 6, 7]] = True  # round, hyperdense, two specific features
    attrs[1, [1, 3, 8]] = True     # irregular, hypodense, one specific feature
    return x, torch.stack([sphere, box]), attrs


def _check(net, x, masks, attrs):
    net.eval()
    with torch.no_grad():
        d = net.predict_details(x)
    net.train()
    labels = d["log_probs"].argmax(1)[0]
    dice = [float(2 * ((labels == k + 1) & m).sum() / ((labels == k + 1).sum() + m.sum())) for k, m in enumerate(masks)]
    attr_ok = []
    for k, m in enumerate(masks):
        q = ((d["token_probs"][0] * m).sum((1, 2, 3)) * d["objectness"][0]).argmax()
        predicted = d["attribute_probs"][0, q].argmax(-1)  # best value per type
        attr_ok.append(all(bool(attrs[k, v]) for v in predicted.tolist())
                       and int(d["disease_given_token"][0, q].argmax()) == k)
    return dice, attr_ok


def test_overfit_two_lesions_with_different_attributes():
    torch.manual_seed(0)
    cfg = MaleniaConfig(hidden_dim=32, num_tokens=8, num_heads=4, ffn_dim=64, fusion_layers=3, text_dim=16,
                        num_attribute_types=3, lesion_labels=(1, 2))
    p = unet_plans([8, 8, 16, 16], convs_per_stage=1)
    net = build_malenia_network(p["network_class_name"], p["arch_kwargs"], p["_kw_requires_import"], 1, 3, cfg, V)
    net.set_vocabulary(*random_vocabulary(VOCAB, cfg.text_dim, seed=2))
    table = torch.zeros(2, V)
    table[0, [0, 5]], table[0, [6, 7]] = 1.0, 0.5
    table[1, [1, 3, 8]] = 1.0
    net.set_knowledge_table(table, [1, 2])
    x, masks, attrs = _patch()
    targets = [LesionTargets(masks, attrs)]
    criterion = MaleniaCriterion()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.0)
    net.train()
    dice, attr_ok = [0.0, 0.0], [False, False]
    for step in range(1, MAX_STEPS + 1):
        out = net(x, targets=targets, matcher=criterion.matcher)
        loss = criterion(out, targets)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 30 and step % 5 == 0:
            dice, attr_ok = _check(net, x, masks, attrs)
            if min(dice) > 0.9 and all(attr_ok):
                break
    assert min(dice) > 0.9, f"Dice {dice} after {step} steps"
    assert all(attr_ok), f"attributes/disease wrong after {step} steps"
