"""Masked attention, its empty-mask guard, positional encoding and CMKI token identity."""
import torch

from nnunetv2_malenia.network import MaleniaConfig
from nnunetv2_malenia.network.attention import MultiHeadAttention
from nnunetv2_malenia.network.cmki import CrossModalKnowledgeInjection, ensemble_log_probs
from nnunetv2_malenia.network.position_encoding import sine_position_encoding_3d
from nnunetv2_malenia.network.transformer_decoder import MaskedAttentionDecoder, foreground_attention_mask


def test_empty_mask_guard_attends_everywhere():
    logits = torch.tensor([[[1.0, -1.0, 2.0], [-1.0, -2.0, -3.0]]])
    mask = foreground_attention_mask(logits)
    assert mask.tolist() == [[[True, False, True], [True, True, True]]]


def test_masked_cross_attention_ignores_masked_voxels():
    torch.manual_seed(0)
    attn = MultiHeadAttention(8, 2, kv_dim=5).eval()
    q, kv = torch.randn(1, 3, 8), torch.randn(1, 10, 5)
    mask = torch.zeros(1, 3, 10, dtype=torch.bool)
    mask[0, :, :4] = True
    out = attn(q, kv, kv, attn_mask=mask)
    kv2 = kv.clone()
    kv2[0, 4:] = torch.randn(6, 5) * 10  # change only voxels nobody may attend to
    torch.testing.assert_close(attn(q, kv2, kv2, attn_mask=mask), out)
    assert not torch.allclose(attn(q, kv2, kv2), attn(q, kv, kv))


def test_decoder_all_empty_masks_give_finite_output():
    """A pixel feature map that makes every token predict background must not produce NaN."""
    cfg = MaleniaConfig(hidden_dim=16, num_tokens=4, num_heads=2, ffn_dim=16, text_dim=8, num_attribute_types=2)
    dec = MaskedAttentionDecoder([6, 6], pixel_channels=3, config=cfg)
    with torch.no_grad():
        dec.mask_head.layers[-1].weight.zero_()
        dec.mask_head.layers[-1].bias.fill_(-1.0)  # every mask logit < 0: all masks empty
    pixel = torch.rand(1, 3, 8, 8, 8)
    out = dec([torch.randn(1, 6, 2, 2, 2), torch.randn(1, 6, 4, 4, 4)], pixel)
    assert all(torch.isfinite(layer.mask_embed).all() for layer in out.layers)
    assert len(out.layers) == cfg.num_blocks + 1


def test_sine_position_encoding_is_distinct_per_voxel():
    pos = sine_position_encoding_3d((3, 4, 5), 24)
    assert pos.shape == (60, 24)
    assert torch.cdist(pos, pos).add(torch.eye(60)).min() > 1e-3
    # flattened like tensor.flatten(2): z varies fastest
    grid = pos.view(3, 4, 5, 24)
    torch.testing.assert_close(grid[1, 2, :, :8], grid[1, 0, :, :8])  # x channels ignore y


def test_ensemble_log_probs_match_mean_of_sigmoids():
    a, b = torch.randn(50) * 20, torch.randn(50) * 20
    log_p, log_q = ensemble_log_probs(a, b)
    p = 0.5 * (a.sigmoid() + b.sigmoid())
    torch.testing.assert_close(log_p.exp(), p)
    torch.testing.assert_close(log_q.exp(), 1 - p, atol=1e-6, rtol=1e-5)


def test_cmki_keeps_tokens_apart_and_uses_attributes():
    torch.manual_seed(0)
    cfg = MaleniaConfig(hidden_dim=16, num_tokens=4, num_heads=2, ffn_dim=16, fusion_layers=3, text_dim=8,
                        num_attribute_types=2)
    cmki = CrossModalKnowledgeInjection(cfg, pixel_channels=5).eval()
    tokens, attrs = torch.randn(1, 4, 16), torch.randn(1, 4, 2, 8)
    out = cmki(tokens, attrs)
    q = torch.nn.functional.normalize(out.mask_m.query[0], dim=-1)
    assert (q @ q.t() - torch.eye(4)).abs().max() < 0.99  # tokens do not collapse to one mask
    attrs2 = attrs.clone()
    attrs2[0, 1] = torch.randn(2, 8)
    out2 = cmki(tokens, attrs2)
    assert not torch.allclose(out2.mask_t.query[0, 1], out.mask_t.query[0, 1])
