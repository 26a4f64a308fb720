"""Shapes at every output for two plan shapes and both nnU-Net U-Nets; state-dict round trip."""
import pytest
import torch

from nnunetv2_malenia.loss import HungarianMatcher, LesionTargets
from nnunetv2_malenia.network import MaleniaConfig, build_malenia_network, mask_logits
from nnunetv2_malenia.network.toy import PLAIN_UNET, RESENC_UNET, random_vocabulary, unet_plans

CFG = MaleniaConfig(hidden_dim=24, num_tokens=6, num_blocks=3, num_heads=4, ffn_dim=32, fusion_layers=2,
                    text_dim=16, num_attribute_types=3, lesion_labels=(2,))
VOCAB = (3, 2, 4)
V = sum(VOCAB)
NUM_CLASSES = 3  # background, organ, lesion


def make(features, arch=PLAIN_UNET, deep_supervision=True, seed=0):
    torch.manual_seed(seed)
    p = unet_plans(features, arch, convs_per_stage=1)
    net = build_malenia_network(p["network_class_name"], p["arch_kwargs"], p["_kw_requires_import"], 1,
                                NUM_CLASSES, CFG, V, deep_supervision=deep_supervision)
    net.set_vocabulary(*random_vocabulary(VOCAB, CFG.text_dim))
    net.set_knowledge_table(torch.rand(2, V), [2, 3])
    return net


def targets_for(batch, shape):
    out = []
    for b in range(batch):
        m = torch.zeros(b + 1, *shape, dtype=torch.bool)
        a = torch.zeros(b + 1, V, dtype=torch.bool)
        for i in range(b + 1):
            m[i, 2 + 4 * i:6 + 4 * i, 2:6, 3:7] = True
            a[i, [i % 3, 3, 5 + i]] = True
        out.append(LesionTargets(m, a))
    return out


@pytest.mark.parametrize("features,levels,strides,shape", [
    ([4, 8, 16, 16], [0, 1], [(4, 4, 4), (2, 2, 2)], (16, 16, 16)),  # 4 stages: 3 decoder stages
    ([4, 8, 16, 16, 16], [0, 1, 2], [(8, 8, 8), (4, 4, 4), (2, 2, 2)], (32, 16, 32)),  # 5 stages, anisotropic
])
def test_train_and_eval_shapes(features, levels, strides, shape):
    net = make(features)
    assert net.level_indices == levels
    assert net.backbone.feature_strides[:len(levels)] == strides
    b = 2
    x = torch.randn(b, 1, *shape)
    tg = targets_for(b, shape)
    net.train()
    out = net(x, targets=tg, matcher=HungarianMatcher())
    # nnU-Net's own deep-supervision output is untouched
    assert [tuple(s.shape) for s in out["seg"]] == [
        (b, NUM_CLASSES, *(s // 2 ** i for s in shape)) for i in range(len(features) - 1)]
    c4 = features[0]
    assert out["pixel_features"].shape == (b, c4, *shape)
    assert len(out["layers"]) == CFG.num_blocks + 1
    for layer in out["layers"]:
        assert layer.mask_embed.shape == (b, CFG.num_tokens, c4)
        assert layer.objectness.shape == (b, CFG.num_tokens)
        assert layer.attr_embed.shape == (b, CFG.num_tokens, CFG.text_dim)
    for head in (out["cmki"].mask_m, out["cmki"].mask_t):
        assert head.query.shape == (b, CFG.num_tokens, c4) and head.bias.shape == (b, CFG.num_tokens)
        assert mask_logits(head, out["pixel_features"]).shape == (b, CFG.num_tokens, *shape)
    assert [len(t) for t, _ in out["indices"]] == [1, 2]
    net.eval()
    with torch.no_grad():
        y = net(x)
        details = net.predict_details(x)
    assert y.shape == (b, 4, *shape)  # labels 0..3: head gives 0/1, table diseases 2/3
    torch.testing.assert_close(y.exp().sum(1), torch.ones(b, *shape), atol=1e-4, rtol=0)
    assert details["token_probs"].shape == (b, CFG.num_tokens, *shape)
    assert details["attribute_probs"].shape == (b, CFG.num_tokens, 3, V)
    assert details["disease_scores"].shape == (b, CFG.num_tokens, 2)


def test_residual_encoder_unet_and_no_targets():
    net = make([4, 8, 16, 16], arch=RESENC_UNET)
    x = torch.randn(1, 1, 16, 16, 16)
    net.train()
    out = net(x)  # no targets: predicted attributes for every token, no matching
    assert out["indices"] is None and len(out["layers"]) == 4
    net.eval()
    with torch.no_grad():
        assert net(x).shape == (1, 4, 16, 16, 16)


def test_training_with_targets_needs_matcher():
    net = make([4, 8, 16, 16])
    with pytest.raises(ValueError, match="matcher"):
        net(torch.randn(1, 1, 16, 16, 16), targets=targets_for(1, (16, 16, 16)))


def test_state_dict_round_trip_like_nnunet_predictor():
    """The predictor rebuilds without deep supervision and without knowing the table, then loads."""
    trained = make([4, 8, 16, 16], seed=1)
    fresh_p = unet_plans([4, 8, 16, 16], convs_per_stage=1)
    fresh = build_malenia_network(fresh_p["network_class_name"], fresh_p["arch_kwargs"],
                                  fresh_p["_kw_requires_import"], 1, NUM_CLASSES, CFG, num_values=1,
                                  deep_supervision=False)
    fresh.load_state_dict(trained.state_dict())
    x = torch.randn(1, 1, 16, 16, 16)
    trained.eval(), fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), trained(x))
    assert fresh.attributes.value_embeddings.shape == (V, CFG.text_dim)


def test_nnunet_deep_supervision_toggle_still_works():
    net = make([4, 8, 16, 16])
    net.decoder.deep_supervision = False  # what nnUNetTrainer.set_deep_supervision_enabled does
    net.train()
    out = net(torch.randn(1, 1, 16, 16, 16))
    assert torch.is_tensor(out["seg"]) and out["seg"].shape == (1, NUM_CLASSES, 16, 16, 16)


def test_config_json_round_trip_and_validation():
    import json

    cfg = MaleniaConfig(hidden_dim=64, num_heads=4, lesion_labels=[2, 3])
    again = MaleniaConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.lesion_labels == (2, 3)
    with pytest.raises(ValueError, match="divisible"):
        MaleniaConfig(hidden_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="unknown"):
        MaleniaConfig.from_dict({"hidden": 3})


@pytest.mark.parametrize("scale", [0.0, 0.5])
def test_token_backbone_gradient_scales_only_what_the_tokens_send_the_backbone(scale):
    """token_backbone_gradient: the forward pass is unchanged; the backbone gets `scale` x the token
    path's gradient (0: none), nnU-Net's head loss still reaches it in full, and the token path's own
    parameters learn as before."""
    import dataclasses

    shape = (16, 16, 16)
    x = torch.randn(2, 1, *shape)
    tg = targets_for(2, shape)
    grads, outputs = {}, {}
    for s in (1.0, scale):
        net = make([4, 8, 16, 16])
        net.config = dataclasses.replace(CFG, token_backbone_gradient=s)
        net.train()
        out = net(x, targets=tg, matcher=HungarianMatcher())
        token_loss = sum(layer.mask_embed.square().sum() + layer.attr_embed.square().sum() for layer in out["layers"])
        token_loss.backward(retain_graph=True)
        grads[s] = ([torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.backbone.parameters()],
                    [p.grad.clone() for p in net.transformer_decoder.parameters() if p.grad is not None])
        outputs[s] = token_loss.detach()
        net.zero_grad()
        out["seg"][0].square().mean().backward()  # nnU-Net's head loss: untouched by the switch
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.backbone.parameters())
    assert torch.allclose(outputs[1.0], outputs[scale])
    backbone_full, decoder_full = grads[1.0]
    backbone_scaled, decoder_scaled = grads[scale]
    assert sum(g.abs().sum() for g in backbone_full) > 0
    for full, scaled in zip(backbone_full, backbone_scaled):
        assert torch.allclose(scaled, scale * full, atol=1e-6)
    for full, scaled in zip(decoder_full, decoder_scaled):
        assert torch.allclose(scaled, full, atol=1e-6)


def test_token_backbone_gradient_outside_0_1_is_refused():
    with pytest.raises(ValueError, match="token_backbone_gradient must be in \\[0, 1\\].*got 2.0"):
        MaleniaConfig(token_backbone_gradient=2.0)
