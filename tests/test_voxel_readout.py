"""The per-voxel attribute readout (MaleniaConfig.voxel_readout) and the "voxel" naming rule."""
import pytest
import torch

from nnunetv2_malenia.loss import LesionTargets, MaleniaCriterion
from nnunetv2_malenia.network import MaleniaConfig, build_malenia_network
from nnunetv2_malenia.network.disease_head import DiseaseHead
from nnunetv2_malenia.network.toy import random_vocabulary, unet_plans
from nnunetv2_malenia.network.voxel_readout import VOXELS_PER_LESION

VOCAB = (2, 3, 3)
V = sum(VOCAB)
SHAPE = (16, 16, 16)


def make_net(**overrides):
    torch.manual_seed(0)
    cfg = MaleniaConfig(hidden_dim=16, num_tokens=5, num_heads=2, ffn_dim=16, fusion_layers=1, text_dim=8,
                        num_attribute_types=3, voxel_readout=True, **overrides)
    p = unet_plans([4, 8, 8, 8], convs_per_stage=1)
    net = build_malenia_network(p["network_class_name"], p["arch_kwargs"], p["_kw_requires_import"], 1, 2, cfg, V)
    net.set_vocabulary(*random_vocabulary(VOCAB, cfg.text_dim))
    return net


def lesion_targets(n, sizes=((4, 5, 5), (2, 2, 2))):
    m = torch.zeros(n, *SHAPE, dtype=torch.bool)
    a = torch.zeros(n, V, dtype=torch.bool)
    for i in range(n):
        sx, sy, sz = sizes[i % len(sizes)]
        m[i, 1 + 7 * i:1 + 7 * i + sx, 3:3 + sy, 4:4 + sz] = True
        a[i, [i % 2, 2 + i, 5 + i]] = True
    return LesionTargets(m, a)


def test_the_readout_is_trained_on_a_sample_of_each_lesions_voxels_with_that_lesions_values():
    net = make_net().train()
    targets = [lesion_targets(2), lesion_targets(0)]
    criterion = MaleniaCriterion()
    out = net(torch.randn(2, 1, *SHAPE), targets=targets, matcher=criterion.matcher)
    z, positives = out["voxel_attributes"]
    # lesion 0 has 100 voxels (capped), lesion 1 has 8 (all of them)
    assert z.shape == (VOXELS_PER_LESION + 8, 8)
    assert torch.equal(positives[:VOXELS_PER_LESION], targets[0].attribute_targets[0].expand(VOXELS_PER_LESION, -1))
    assert torch.equal(positives[VOXELS_PER_LESION:], targets[0].attribute_targets[1].expand(8, -1))
    losses = criterion(out, targets)
    assert losses["voxel_attributes"] > 0
    grads = torch.autograd.grad(losses["loss"], list(net.voxel_readout.parameters()))
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_a_batch_without_lesions_keeps_the_readout_in_the_graph():
    net = make_net().train()
    criterion = MaleniaCriterion()
    targets = [lesion_targets(0), lesion_targets(0)]
    out = net(torch.randn(2, 1, *SHAPE), targets=targets, matcher=criterion.matcher)
    losses = criterion(out, targets)
    assert losses["voxel_attributes"] == 0
    losses["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.voxel_readout.parameters())


def test_voxel_naming_gives_each_voxel_the_disease_its_own_readout_matches():
    # labels: 0 background, 1 organ; diseases A -> 2, B -> 3; two voxels under one strong token that says A
    head = DiseaseHead(num_values=5, num_head_classes=2)
    head.set_knowledge_table(torch.rand(2, 5), [2, 3])
    head_logits = torch.zeros(1, 2, 2, 1, 1)
    token_probs = torch.full((1, 1, 2, 1, 1), 0.9)
    scores = torch.tensor([[[0.95, 0.05]]])
    voxel_disease = torch.tensor([[0.8, 0.1], [0.2, 0.9]]).view(1, 2, 2, 1, 1)  # voxel 0 reads A, voxel 1 B
    by_sum = head.label_log_probs(token_probs, scores, head_logits, "tokens", "sum")
    by_voxel = head.label_log_probs(token_probs, scores, head_logits, "tokens", "voxel", voxel_disease)
    assert by_sum.argmax(1).flatten().tolist() == [2, 2]
    assert by_voxel.argmax(1).flatten().tolist() == [2, 3]
    torch.testing.assert_close(by_voxel.exp()[:, 2:].sum(1), by_sum.exp()[:, 2:].sum(1))  # same lesion mass
    with pytest.raises(ValueError, match="lesion_naming 'voxel' needs the per-voxel disease probabilities"):
        head.label_log_probs(token_probs, scores, head_logits, "tokens", "voxel")


def test_voxel_naming_needs_a_model_with_the_readout():
    with pytest.raises(ValueError, match="lesion_naming 'voxel' needs voxel_readout=True"):
        MaleniaConfig(lesion_naming="voxel")
    with pytest.raises(ValueError, match="lesion_naming 'hybrid' needs voxel_readout=True"):
        MaleniaConfig(lesion_naming="hybrid")


def test_hybrid_naming_lets_the_head_pick_among_seen_diseases_and_the_readout_keep_the_unseen_share():
    # head channels: 0 background, 1 organ, 2 and 3 the seen diseases A and B; table: A -> 2, B -> 3,
    # U -> 4 (no channel: unseen). Voxel 0 reads A but the head says B; voxel 1 reads U.
    head = DiseaseHead(num_values=5, num_head_classes=4, lesion_labels=(2, 3))
    head.set_knowledge_table(torch.rand(3, 5), [2, 3, 4], num_labels=5)
    assert head.seen_disease_channels().tolist() == [True, True, False]
    head_logits = torch.zeros(1, 4, 2, 1, 1)
    head_logits[0, 3] = 6.0                 # B over A wherever the head is asked
    token_probs = torch.full((1, 1, 2, 1, 1), 0.9)
    scores = torch.tensor([[[0.5, 0.3, 0.2]]])
    voxel_disease = torch.tensor([[0.7, 0.1], [0.2, 0.1], [0.1, 0.8]]).view(1, 3, 2, 1, 1)
    by_voxel = head.label_log_probs(token_probs, scores, head_logits, "tokens", "voxel", voxel_disease).exp()
    hybrid = head.label_log_probs(token_probs, scores, head_logits, "tokens", "hybrid", voxel_disease).exp()
    assert by_voxel.argmax(1).flatten().tolist() == [2, 4]
    assert hybrid.argmax(1).flatten().tolist() == [3, 4]
    torch.testing.assert_close(hybrid[:, 4], by_voxel[:, 4])                        # the unseen share is the readout's
    torch.testing.assert_close(hybrid[:, 2:4].sum(1), by_voxel[:, 2:4].sum(1))      # so is the seen diseases' sum
    ratio = torch.softmax(torch.tensor([0.0, 6.0]), 0)
    torch.testing.assert_close(hybrid[0, 2:4, 0, 0, 0] / hybrid[0, 2:4, 0, 0, 0].sum(), ratio)  # split by the head


def test_hybrid_naming_with_a_table_of_unseen_rows_only_is_voxel_naming():
    head = DiseaseHead(num_values=5, num_head_classes=3, lesion_labels=(2,))
    head.set_knowledge_table(torch.rand(2, 5), [3, 4], num_labels=5, head_label_map=[0, 1, -1])
    voxel_disease = torch.tensor([[0.7, 0.1], [0.3, 0.9]]).view(1, 2, 2, 1, 1)
    args = (torch.full((1, 1, 2, 1, 1), 0.9), torch.tensor([[[0.6, 0.4]]]), torch.randn(1, 3, 2, 1, 1), "tokens")
    torch.testing.assert_close(head.label_log_probs(*args, "hybrid", voxel_disease),
                               head.label_log_probs(*args, "voxel", voxel_disease))


def test_eval_output_with_voxel_naming_is_a_distribution_over_the_tables_labels():
    net = make_net(lesion_naming="voxel").eval()
    net.set_knowledge_table(torch.rand(3, V), [2, 3, 4])
    with torch.no_grad():
        details = net.predict_details(torch.randn(1, 1, *SHAPE))
        voxel = net.voxel_disease(net.backbone(torch.randn(1, 1, *SHAPE)).pixel_features,
                                  torch.zeros(1, *SHAPE, dtype=torch.bool))
    assert details["log_probs"].shape == (1, 5, *SHAPE)
    torch.testing.assert_close(details["log_probs"].exp().sum(1), torch.ones(1, *SHAPE), atol=1e-4, rtol=0)
    torch.testing.assert_close(voxel, torch.full((1, 3, *SHAPE), 1 / 3))  # nowhere asked: uniform


def test_the_local_readout_sees_only_a_15_voxel_neighbourhood_of_the_image():
    net = make_net(voxel_readout_local=True).eval()
    x = torch.randn(1, 1, 24, 24, 24)
    far = x.clone()
    far[..., 16:] += 5.0   # changes only voxels 8 or more away (along z) from z = 8
    with torch.no_grad():
        pixel = net.backbone(x).pixel_features
        near_read = net.voxel_readout.features(x, pixel)
        far_read = net.voxel_readout.features(far, pixel)
    torch.testing.assert_close(near_read[..., :9], far_read[..., :9])      # z <= 8: nothing within 7 voxels changed
    assert not torch.allclose(near_read[..., 9:], far_read[..., 9:])       # z = 9 sees z = 16
    with pytest.raises(ValueError, match="voxel_readout_local needs voxel_readout=True"):
        MaleniaConfig(voxel_readout_local=True)


def test_the_local_readout_is_trained_through_its_own_cnn():
    net = make_net(voxel_readout_local=True).train()
    targets = [lesion_targets(2)]
    criterion = MaleniaCriterion()
    out = net(torch.randn(1, 1, *SHAPE), targets=targets, matcher=criterion.matcher)
    losses = criterion(out, targets)
    grads = torch.autograd.grad(losses["loss"], list(net.voxel_readout.local.parameters()))
    assert losses["voxel_attributes"] > 0 and all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_with_nnunet_presence_the_voxels_are_read_where_nnunets_head_finds_a_lesion():
    from unittest import mock

    net = make_net(lesion_naming="voxel", lesion_presence="nnunet", lesion_labels=(1,)).eval()
    net.set_knowledge_table(torch.rand(2, V), [1, 2])
    x = torch.randn(1, 1, *SHAPE)
    with torch.no_grad():
        net.decoder.seg_layers[-1].bias[1] = -8.0   # nnU-Net's head: a lesion almost nowhere
        with mock.patch.object(net, "voxel_disease", wraps=net.voxel_disease) as read:
            details = net.predict_details(x)
        seg = net.backbone(x).seg
        head = torch.softmax((seg[0] if isinstance(seg, (list, tuple)) else seg).float(), dim=1)[:, 1]  # lesion channel
    where = read.call_args.args[1]
    token_mass = torch.einsum("bn,bnxyz->bxyz", details["objectness"], details["token_probs"])
    assert torch.equal(where, head >= 0.01)
    assert where.sum() < (token_mass >= 0.01).sum()   # not where the tokens put mass


def test_per_type_readout_reads_each_type_with_its_own_network():
    """Type t's logits come from type t's CNN and MLP only: a loss on one type's values moves no
    parameter of another type's readout (no type can use another's features as a shortcut)."""
    net = make_net(voxel_readout_local=True, voxel_readout_per_type=True).train()
    readout = net.voxel_readout
    x = torch.randn(1, 1, *SHAPE)
    read = readout.features(x, None)
    feats = read[0].permute(1, 2, 3, 0).reshape(-1, read.shape[1])[:20]
    z = readout(feats)
    assert z.shape == (20, 3, 8)
    logits = readout.attribute_logits(feats, net.attributes)
    assert logits.shape == (20, V)
    first_type = net.attributes.value_type == 0
    cnn_weights = [cnn[0].weight for cnn in readout.local.cnns]
    grads = torch.autograd.grad(logits[:, first_type].sum(), [readout.mlp.w2, *cnn_weights])
    assert grads[0][0].abs().sum() > 0 and grads[0][1:].abs().sum() == 0   # MLP: type 0's slice only
    assert grads[1].abs().sum() > 0 and all(g.abs().sum() == 0 for g in grads[2:])   # CNN: its own only
    with pytest.raises(ValueError, match="voxel_readout_per_type needs voxel_readout_local=True"):
        MaleniaConfig(voxel_readout=True, voxel_readout_per_type=True)


def test_per_type_similarity_reads_each_value_with_its_types_embedding():
    from nnunetv2_malenia.loss.contrastive import multi_positive_nce
    from nnunetv2_malenia.network.attribute_bank import cosine_to_values

    torch.manual_seed(1)
    bank = torch.nn.functional.normalize(torch.randn(V, 8), dim=-1)
    value_type = torch.tensor([t for t, n in enumerate(VOCAB) for _ in range(n)])
    z = torch.randn(4, 3, 8)
    sims = cosine_to_values(z, bank, value_type, per_type=True)
    for v in range(V):
        expected = torch.nn.functional.normalize(z[:, value_type[v]], dim=-1) @ bank[v]
        torch.testing.assert_close(sims[:, v], expected)
    # one embedding repeated for every type is the ordinary, shared readout
    shared = torch.randn(4, 8)
    positives = torch.zeros(4, V, dtype=torch.bool)
    positives[:, [0, 3, 6]] = True
    scale = torch.tensor(10.0)
    torch.testing.assert_close(multi_positive_nce(shared.unsqueeze(1).expand(4, 3, 8), positives, bank, value_type, 3, scale),
                               multi_positive_nce(shared, positives, bank, value_type, 3, scale))


def test_lesion_only_types_read_the_lesion_and_nothing_around_it():
    """A lesion-only type's CNN sees the image inside the lesion mask and the mask: changing the
    organ around the lesion (even next to it) leaves its features unchanged, while the other types'
    CNNs, which read the image, see the change."""
    net = make_net(voxel_readout_local=True, voxel_readout_per_type=True,
                   voxel_readout_lesion_only_types=(1,)).eval()
    readout, channels = net.voxel_readout, net.voxel_readout.local.cnns[0][-2].out_channels
    x = torch.randn(1, 1, *SHAPE)
    lesion = torch.zeros(1, *SHAPE, dtype=torch.bool)
    lesion[:, 5:10, 5:10, 5:10] = True
    other_organ = x.clone()
    other_organ[~lesion.unsqueeze(1)] += 3.0
    with torch.no_grad():
        read, changed = readout.features(x, None, lesion), readout.features(other_organ, None, lesion)
        moved_lesion = readout.features(x, None, lesion.roll(2, dims=1))
    type_1 = slice(channels, 2 * channels)
    torch.testing.assert_close(read[:, type_1], changed[:, type_1])
    assert not torch.allclose(read[:, :channels], changed[:, :channels])        # type 0 reads the image
    assert not torch.allclose(read[:, type_1], moved_lesion[:, type_1])          # type 1 reads the mask
    with pytest.raises(ValueError, match="pass lesion_mask"):
        readout.features(x, None)


def test_mask_only_types_read_the_lesions_outline_and_not_its_ct_numbers():
    """A mask-only type's CNN reads the mask alone: changing the image anywhere, inside the lesion
    too, leaves its features unchanged, moving the mask does not; a lesion-only type sees the
    lesion's own CT numbers change."""
    net = make_net(voxel_readout_local=True, voxel_readout_per_type=True,
                   voxel_readout_lesion_only_types=(1,), voxel_readout_mask_only_types=(2,)).eval()
    readout, channels = net.voxel_readout, net.voxel_readout.local.cnns[0][-2].out_channels
    assert readout.local.cnns[2][0].in_channels == 1
    x = torch.randn(1, 1, *SHAPE)
    lesion = torch.zeros(1, *SHAPE, dtype=torch.bool)
    lesion[:, 5:10, 5:10, 5:10] = True
    with torch.no_grad():
        read = readout.features(x, None, lesion)
        other_image = readout.features(x + 3.0 * torch.randn_like(x), None, lesion)
        moved_lesion = readout.features(x, None, lesion.roll(2, dims=1))
    type_1, type_2 = slice(channels, 2 * channels), slice(2 * channels, 3 * channels)
    torch.testing.assert_close(read[:, type_2], other_image[:, type_2])
    assert not torch.allclose(read[:, type_2], moved_lesion[:, type_2])
    assert not torch.allclose(read[:, type_1], other_image[:, type_1])           # type 1 reads the lesion's CT
    with pytest.raises(ValueError, match="pass lesion_mask"):
        readout.features(x, None)
    only_mask = make_net(voxel_readout_local=True, voxel_readout_per_type=True, voxel_readout_mask_only_types=(0,))
    assert only_mask.voxel_readout.needs_lesion_mask


def test_relative_lesion_types_read_the_lesions_texture_not_its_ct_number():
    """With voxel_readout_lesion_relative, a lesion-only type reads the lesion's CT numbers minus
    their mean over the lesion: the whole lesion 3 units brighter (another organ's lesion with the
    same texture) reads the same, a different texture does not; without it the brighter lesion reads
    differently. Density, which reads the image, sees the offset either way."""
    x = torch.randn(1, 1, *SHAPE)
    lesion = torch.zeros(1, *SHAPE, dtype=torch.bool)
    lesion[:, 5:10, 4:11, 5:9] = True
    brighter = x + 3.0 * lesion.unsqueeze(1)
    other_texture = x + 2.0 * torch.randn_like(x) * lesion.unsqueeze(1)
    for relative in (True, False):
        net = make_net(voxel_readout_local=True, voxel_readout_per_type=True,
                       voxel_readout_lesion_only_types=(1,), voxel_readout_lesion_relative=relative).eval()
        readout, channels = net.voxel_readout, net.voxel_readout.local.cnns[0][-2].out_channels
        type_1 = slice(channels, 2 * channels)
        with torch.no_grad():
            read, bright, texture = (readout.features(image, None, lesion) for image in (x, brighter, other_texture))
        assert not torch.allclose(read[:, :channels], bright[:, :channels])          # type 0 reads the image
        assert not torch.allclose(read[:, type_1], texture[:, type_1])
        if relative:
            torch.testing.assert_close(read[:, type_1], bright[:, type_1])
        else:
            assert not torch.allclose(read[:, type_1], bright[:, type_1])


def test_relative_lesion_ct_numbers_need_lesion_only_types():
    with pytest.raises(ValueError, match="voxel_readout_lesion_relative needs voxel_readout_lesion_only_types"):
        MaleniaConfig(voxel_readout=True, voxel_readout_local=True, voxel_readout_per_type=True,
                      voxel_readout_lesion_relative=True)
    cfg = MaleniaConfig(voxel_readout=True, voxel_readout_local=True, voxel_readout_per_type=True,
                        voxel_readout_lesion_only_types=(1,), voxel_readout_lesion_relative=True)
    assert MaleniaConfig.from_dict(cfg.to_dict()).voxel_readout_lesion_relative


def test_lesion_only_readout_trains_on_the_target_lesions_and_infers_on_the_lesion_mass():
    from unittest import mock

    net = make_net(voxel_readout_local=True, voxel_readout_per_type=True, voxel_readout_lesion_only_types=(0, 2),
                   lesion_naming="voxel", lesion_presence="nnunet", lesion_labels=(1,)).train()
    targets = [lesion_targets(2)]
    criterion = MaleniaCriterion()
    with mock.patch.object(net.voxel_readout.local, "forward", wraps=net.voxel_readout.local.forward) as local:
        out = net(torch.randn(1, 1, *SHAPE), targets=targets, matcher=criterion.matcher)
    assert torch.equal(local.call_args.args[1], targets[0].masks.any(0, keepdim=True))
    losses = criterion(out, targets)
    grads = torch.autograd.grad(losses["loss"], [cnn[0].weight for cnn in net.voxel_readout.local.cnns])
    assert all(g.abs().sum() > 0 for g in grads)
    net.eval()
    net.set_knowledge_table(torch.rand(2, V), [1, 2])
    x = torch.randn(1, 1, *SHAPE)
    with torch.no_grad(), mock.patch.object(net.voxel_readout.local, "forward",
                                            wraps=net.voxel_readout.local.forward) as local:
        net.predict_details(x)
        seg = net.backbone(x).seg
        mass = torch.softmax((seg[0] if isinstance(seg, (list, tuple)) else seg).float(), dim=1)[:, 1]
    assert torch.equal(local.call_args.args[1], mass >= 0.5)


def test_the_readout_can_train_on_the_target_lesions_or_the_voxels_the_head_calls_lesion():
    """voxel_readout_training_mask="targets_or_predicted": the lesion-only types train on the mask
    inference gives them (nnU-Net's lesion mass >= 0.5) joined with the targets, so a ring of organ
    the predicted mask takes in is seen in training too."""
    from unittest import mock

    x = torch.randn(1, 1, *SHAPE)
    targets = [lesion_targets(1)]
    read = {}
    for rule in ("targets", "targets_or_predicted"):
        net = make_net(voxel_readout_local=True, voxel_readout_per_type=True, voxel_readout_lesion_only_types=(1,),
                       lesion_labels=(1,), voxel_readout_training_mask=rule).train()
        with torch.no_grad():  # a head that calls one corner a lesion, away from the target lesion
            net.decoder.seg_layers[-1].bias.copy_(torch.tensor([0.0, -20.0]))
        real_head = net.backbone.forward

        def head_with_a_lesion_corner(inp, real_head=real_head):
            out = real_head(inp)
            seg = out.seg[0] if isinstance(out.seg, (list, tuple)) else out.seg
            seg[:, 1, :3, :3, :3] = 40.0
            return out

        with mock.patch.object(net.backbone, "forward", side_effect=head_with_a_lesion_corner), \
                mock.patch.object(net.voxel_readout.local, "forward", wraps=net.voxel_readout.local.forward) as local:
            net(x, targets=targets, matcher=MaleniaCriterion().matcher)
        read[rule] = local.call_args.args[1][0]
    lesion = targets[0].masks.any(0)
    corner = torch.zeros_like(lesion)
    corner[:3, :3, :3] = True
    assert torch.equal(read["targets"], lesion)
    assert torch.equal(read["targets_or_predicted"], lesion | corner)


def test_the_readout_training_mask_must_be_a_known_rule():
    with pytest.raises(ValueError, match="voxel_readout_training_mask must be one of targets, targets_or_predicted, "
                                         "got 'predicted'"):
        MaleniaConfig(voxel_readout_training_mask="predicted")


def test_lesion_and_mask_only_types_need_the_per_type_readout_and_valid_disjoint_type_indices():
    with pytest.raises(ValueError, match="voxel_readout_lesion_only_types needs voxel_readout_per_type=True"):
        MaleniaConfig(voxel_readout=True, voxel_readout_local=True, voxel_readout_lesion_only_types=(1,))
    with pytest.raises(ValueError, match="voxel_readout_lesion_only_types: 8 is not a type index"):
        MaleniaConfig(voxel_readout=True, voxel_readout_local=True, voxel_readout_per_type=True,
                      voxel_readout_lesion_only_types=(8,))
    config = MaleniaConfig(voxel_readout=True, voxel_readout_local=True, voxel_readout_per_type=True,
                           voxel_readout_lesion_only_types=[5, 1, 5])
    assert config.voxel_readout_lesion_only_types == (1, 5)
    assert MaleniaConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="voxel_readout_mask_only_types needs voxel_readout_per_type=True"):
        MaleniaConfig(voxel_readout=True, voxel_readout_local=True, voxel_readout_mask_only_types=(1,))
    with pytest.raises(ValueError, match="voxel_readout_mask_only_types: -1 is not a type index"):
        MaleniaConfig(voxel_readout=True, voxel_readout_local=True, voxel_readout_per_type=True,
                      voxel_readout_mask_only_types=(-1,))
    with pytest.raises(ValueError, match="type 5 is in both voxel_readout_lesion_only_types and "
                                         "voxel_readout_mask_only_types"):
        MaleniaConfig(voxel_readout=True, voxel_readout_local=True, voxel_readout_per_type=True,
                      voxel_readout_lesion_only_types=(1, 5), voxel_readout_mask_only_types=(5,))
    config = MaleniaConfig(voxel_readout=True, voxel_readout_local=True, voxel_readout_per_type=True,
                           voxel_readout_lesion_only_types=(1,), voxel_readout_mask_only_types=[0])
    assert MaleniaConfig.from_dict(config.to_dict()) == config
