"""Knowledge-table scoring, the coherent eval distribution, and swapping the table."""
import pytest
import torch

from nnunetv2_malenia.network import MaleniaConfig, build_malenia_network
from nnunetv2_malenia.network.disease_head import DiseaseHead
from nnunetv2_malenia.network.toy import random_vocabulary, unet_plans

VALUE_TYPE = torch.tensor([0, 0, 1, 1, 1])  # two types: 2 and 3 values


def test_row_scoring_prefers_the_row_matching_the_attributes():
    head = DiseaseHead(num_values=5, num_head_classes=2)
    table = torch.tensor([[1.0, 0, 1, 0, 0],      # disease A: value 0, value 2
                          [0, 1.0, 0, 0.5, 0.5],  # disease B: value 1, value 3 or 4
                          [1.0, 0, 0, 0, 1.0]])   # disease C: value 0, value 4
    head.set_knowledge_table(table, [2, 3, 4])
    probs = torch.zeros(1, 3, 2, 5)
    probs[0, 0, 0, 0], probs[0, 0, 1, 2] = 1, 1          # token 0 -> A
    probs[0, 1, 0, 1], probs[0, 1, 1, 3] = 1, 1          # token 1 -> B
    probs[0, 2, 0, 0], probs[0, 2, 1, 4] = 0.9, 0.9      # token 2 -> C (soft)
    probs[0, 2, 0, 1], probs[0, 2, 1, 2] = 0.1, 0.1
    p = head.disease_given_token(probs, VALUE_TYPE)
    assert p.argmax(-1).tolist() == [[0, 1, 2]]
    torch.testing.assert_close(p.sum(-1), torch.ones(1, 3))


def test_seen_row_penalty_moves_probability_from_the_trained_rows_to_the_unseen_ones():
    # head channels 0..3; 2 and 3 are lesion channels: diseases A (label 2) and B (label 3) were trained,
    # C (label 4, past the head) was not
    head = DiseaseHead(num_values=5, num_head_classes=4, lesion_labels=[2, 3])
    table = torch.tensor([[1.0, 0, 1, 0, 0], [0, 1.0, 0, 1, 0], [1.0, 0, 0, 0, 1.0]])
    head.set_knowledge_table(table, [2, 3, 4])
    assert head.seen_disease_channels().tolist() == [True, True, False]
    probs = torch.zeros(1, 1, 2, 5)
    probs[0, 0, 0, 0], probs[0, 0, 1, 2], probs[0, 0, 1, 4] = 1.0, 0.7, 0.3  # A's values, some of C's
    plain = head.disease_given_token(probs, VALUE_TYPE)
    assert plain.argmax(-1).item() == 0
    penalised = head.disease_given_token(probs, VALUE_TYPE, seen_penalty=1.0)
    assert penalised.argmax(-1).item() == 2  # log(0.7 / 0.3) = 0.85 < 1: C wins
    # the offset is a prior: the odds of every seen row against every unseen row shrink by e^-penalty
    torch.testing.assert_close(penalised[..., 0] / penalised[..., 2],
                               plain[..., 0] / plain[..., 2] * torch.exp(torch.tensor(-1.0)))
    torch.testing.assert_close(penalised.sum(-1), torch.ones(1, 1))
    with pytest.raises(ValueError, match="seen_row_penalty must be >= 0"):
        MaleniaConfig(seen_row_penalty=-0.5)


def test_label_distribution_is_coherent():
    head = DiseaseHead(num_values=5, num_head_classes=3, lesion_labels=[2])
    head.set_knowledge_table(torch.rand(2, 5), [2, 3])
    token_probs = torch.rand(2, 4, 3, 3, 3)
    scores = torch.rand(2, 4, 2)  # sum over tokens may exceed 1: must be rescaled
    head_logits = torch.randn(2, 3, 3, 3, 3)
    logp = head.label_log_probs(token_probs, scores, head_logits)
    assert logp.shape == (2, 4, 3, 3, 3)
    p = logp.exp()
    torch.testing.assert_close(p.sum(1), torch.ones(2, 3, 3, 3), atol=1e-5, rtol=0)
    assert p[:, 2:].sum(1).max() > 0.999  # the rescaled lesion mass saturates where tokens overlap
    # non-lesion labels share the remainder in the head's proportions (head channel 2 is a lesion: ignored)
    p = head.label_log_probs(token_probs, 0.1 * scores, head_logits).exp()
    torch.testing.assert_close(p.sum(1), torch.ones(2, 3, 3, 3), atol=1e-5, rtol=0)
    ratio = p[:, 1] / p[:, 0]
    expected = (head_logits[:, 1] - head_logits[:, 0]).exp()
    torch.testing.assert_close(ratio, expected, rtol=1e-4, atol=1e-6)


def test_table_validation():
    head = DiseaseHead(num_values=5, num_head_classes=3)
    with pytest.raises(ValueError, match="both a disease and a non-lesion"):
        head.set_knowledge_table(torch.rand(1, 5), [1])
    with pytest.raises(ValueError, match="background"):
        head.set_knowledge_table(torch.rand(1, 5), [0])
    head.set_knowledge_table(torch.rand(1, 5), [1], head_label_map=[0, -1, 2])
    assert int(head.num_labels) == 3


def test_swapping_the_table_changes_output_channels_without_touching_weights():
    torch.manual_seed(0)
    cfg = MaleniaConfig(hidden_dim=16, num_tokens=4, num_heads=2, ffn_dim=16, fusion_layers=1, text_dim=8,
                        num_attribute_types=2, lesion_labels=(2,))
    p = unet_plans([4, 8, 8, 8], convs_per_stage=1)
    net = build_malenia_network(p["network_class_name"], p["arch_kwargs"], p["_kw_requires_import"], 1, 3, cfg, 5)
    net.set_vocabulary(*random_vocabulary((2, 3), 8))
    net.set_knowledge_table(torch.rand(1, 5), [2])
    net.eval()
    x = torch.randn(1, 1, 16, 16, 16)
    weights = {k: v.clone() for k, v in net.state_dict().items() if "disease_head" not in k}
    with torch.no_grad():
        y3 = net(x)
        net.set_knowledge_table(torch.rand(4, 5), [2, 3, 4, 5])  # four diseases, three never seen
        y6 = net(x)
        # zero-shot dataset with other labels: background + one unseen disease, organ head unused
        net.set_knowledge_table(torch.rand(1, 5), [1], head_label_map=[0, -1, -1])
        y2 = net(x)
    assert y3.shape[1] == 3 and y6.shape[1] == 6 and y2.shape[1] == 2
    for y in (y3, y6, y2):
        torch.testing.assert_close(y.exp().sum(1), torch.ones(1, 16, 16, 16), atol=1e-4, rtol=0)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in weights.items())


def test_nnunet_presence_takes_lesion_mass_from_the_head_and_the_disease_from_the_tokens():
    # labels: 0 background, 1 organ, 2 seen lesion (nnU-Net channel 2), 3 a disease never trained
    head = DiseaseHead(num_values=5, num_head_classes=3, lesion_labels=[2])
    head.set_knowledge_table(torch.rand(2, 5), [2, 3])
    head_logits = torch.full((1, 3, 2, 1, 1), -10.0)
    head_logits[0, 2, 0], head_logits[0, 1, 0] = 10.0, 0.0   # voxel 0: a lesion in the organ, says nnU-Net
    head_logits[0, 1, 1] = 10.0   # voxel 1: organ
    token_probs = torch.zeros(1, 2, 2, 1, 1)
    token_probs[0, 0, :] = 0.3    # a faint token over both voxels...
    scores = torch.tensor([[[0.1, 0.5], [0.0, 0.0]]])  # ...that says "the unseen disease"
    by_tokens = head.label_log_probs(token_probs, scores, head_logits, "tokens").argmax(1).flatten().tolist()
    by_nnunet = head.label_log_probs(token_probs, scores, head_logits, "nnunet")
    assert by_tokens == [1, 1]                                     # too faint: the organ wins everywhere
    assert by_nnunet.argmax(1).flatten().tolist() == [3, 1]        # the head finds it, the tokens name it
    torch.testing.assert_close(by_nnunet.exp().sum(1), torch.ones(1, 2, 1, 1), atol=1e-5, rtol=0)


def test_lesion_presence_rule_is_checked():
    with pytest.raises(ValueError, match="lesion_presence must be one of tokens, nnunet, got 'both'"):
        MaleniaConfig(lesion_presence="both")


def test_token_naming_takes_the_disease_of_the_strongest_token_not_the_sum_of_weak_ones():
    # labels: 0 background, 1 organ; diseases A -> 2, B -> 3; one voxel
    head = DiseaseHead(num_values=5, num_head_classes=2)
    head.set_knowledge_table(torch.rand(2, 5), [2, 3])
    head_logits = torch.zeros(1, 2, 1, 1, 1)
    token_probs = torch.tensor([0.9, 0.8, 0.8, 0.8]).view(1, 4, 1, 1, 1)
    # token 0: objectness 0.9, surely A; tokens 1-3: objectness 0.4 each, surely B (0.96 of B against 0.81 of A)
    scores = torch.tensor([[[0.9, 0.0], [0.0, 0.4], [0.0, 0.4], [0.0, 0.4]]])
    by_sum = head.label_log_probs(token_probs, scores, head_logits, "tokens", "sum")
    by_token = head.label_log_probs(token_probs, scores, head_logits, "tokens", "token")
    assert by_sum.argmax(1).item() == 3 and by_token.argmax(1).item() == 2
    torch.testing.assert_close(by_token.exp().sum(1), torch.ones(1, 1, 1, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(by_token.exp()[:, 2:].sum(1), by_sum.exp()[:, 2:].sum(1))  # same lesion mass
    with pytest.raises(ValueError, match="lesion_naming must be one of sum, token, voxel, hybrid, got 'max'"):
        MaleniaConfig(lesion_naming="max")
