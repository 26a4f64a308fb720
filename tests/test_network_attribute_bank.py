"""The alignment space: centring the frozen text bank within each attribute type."""
import torch

from nnunetv2_malenia.network.attribute_bank import AttributeBank


def _bank(centered: bool) -> AttributeBank:
    bank = AttributeBank(num_values=5, text_dim=3, num_types=3, centered=centered)
    # type 0: two near-identical phrases (cosine 0.98); type 1: three values; type 2: a single value
    embeddings = torch.tensor([[1.0, 0.2, 0.0], [1.0, -0.2, 0.0], [0.0, 1.0, 0.1], [0.0, 1.0, -0.1], [0.3, 0.3, 1.0]])
    bank.set_vocabulary(embeddings, torch.tensor([0, 0, 1, 1, 2]))
    return bank


def test_centring_makes_the_values_of_a_binary_type_opposite():
    plain, centred = _bank(False).normalized_bank(), _bank(True).normalized_bank()
    assert float(plain[0] @ plain[1]) > 0.9
    torch.testing.assert_close(float(centred[0] @ centred[1]), -1.0)
    torch.testing.assert_close(centred.norm(dim=-1), torch.ones(5))
    torch.testing.assert_close(centred[4], plain[4])   # a single-valued type is left as it is


def test_centring_is_recomputed_for_a_new_vocabulary():
    bank = _bank(True)
    bank.set_vocabulary(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), torch.tensor([0, 0, 1]))
    centred = bank.normalized_bank()
    torch.testing.assert_close(float(centred[0] @ centred[1]), -1.0)
