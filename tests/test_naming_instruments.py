"""The instruments that split a test DSC into finding and naming (benchmarks/lesion_confusion.py,
benchmarks/probe_naming.py) and that rescore the readout's naming (benchmarks/probe_value_prior.py):
the conclusions in docs/benchmarks.md rest on them."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from lesion_confusion import named_right  # noqa: E402
from probe_naming import summed_naming  # noqa: E402
from probe_value_prior import named, row_log_likelihood  # noqa: E402

LESIONS = np.array([10, 11, 12])


def _two_lesions() -> tuple[np.ndarray, np.ndarray]:
    truth = np.zeros((12, 12, 12), dtype=np.int16)
    truth[1:4, 1:4, 1:4] = 11          # a lesion of disease 11
    truth[8:11, 8:11, 8:11] = 12       # one of disease 12
    predicted = np.zeros_like(truth)
    predicted[1:4, 1:4, 1:3] = 10      # found, misnamed
    predicted[1:4, 1:4, 3] = 12        # ... partly with a third name
    predicted[6:8, 1:3, 1:3] = 12      # a false positive overlapping no true lesion
    return truth, predicted


def test_named_right_renames_found_lesions_and_keeps_false_positives():
    truth, predicted = _two_lesions()
    oracle = named_right(predicted, truth, LESIONS)
    assert (oracle[1:4, 1:4, 1:4] == 11).all()        # the whole component takes the true disease
    assert (oracle[6:8, 1:3, 1:3] == 12).all()        # the false positive keeps its label
    assert (oracle[8:11, 8:11, 8:11] == 0).all()      # a missed lesion stays missed: naming cannot find


def test_named_right_takes_the_majority_of_a_component_spanning_two_lesions():
    truth = np.zeros((10, 10, 10), dtype=np.int16)
    truth[2:5, 2:5, 2:5] = 11   # 27 voxels
    truth[5:6, 2:5, 2:5] = 12   # 9 voxels touching it
    predicted = np.where(truth > 0, 10, 0).astype(np.int16)
    oracle = named_right(predicted, truth, LESIONS)
    assert set(np.unique(oracle[truth > 0])) == {11}


def test_summed_naming_follows_probability_mass_not_the_voxel_count():
    labels = np.zeros((6, 6, 6), dtype=np.int16)
    labels[1:4, 1:4, 1:4] = 10
    probs = np.zeros((13, 6, 6, 6), dtype=np.float32)
    probs[0] = 1.0
    lesion = labels == 10
    # most voxels lean slightly to 10, a few are sure of 11: 11 carries more mass over the lesion
    probs[0][lesion], probs[10][lesion], probs[11][lesion] = 0.0, 0.51, 0.49
    sure = np.zeros_like(lesion)
    sure[1, 1:4, 1:4] = True
    probs[10][sure], probs[11][sure] = 0.0, 1.0
    labels[sure] = 11
    out = summed_naming(labels, probs, LESIONS)
    assert (out[lesion] == 11).all()
    assert (out[~lesion] == 0).all()


# two types (values 0-1 and 2-4) and three rows: the value-prior probe's toy table
VALUE_TYPE = np.array([0, 0, 1, 1, 1])
MEMBER = np.eye(2)[VALUE_TYPE]
TABLE = np.array([[1.0, 0.0, 1.0, 0.0, 0.0],
                  [0.0, 1.0, 0.0, 0.75, 0.25],
                  [0.5, 0.5, 0.0, 0.0, 0.0]])   # row 2 leaves type 1 empty


def test_the_value_prior_probe_scores_rows_as_the_disease_head_does():
    import torch

    from nnunetv2_malenia.network.disease_head import DiseaseHead

    rng = np.random.default_rng(0)
    q = np.concatenate([rng.dirichlet(np.ones(2), 7), rng.dirichlet(np.ones(3), 7)], 1)   # (M, V), per type
    head = DiseaseHead(num_values=5, num_head_classes=4, lesion_labels=(1, 2))
    head.set_knowledge_table(torch.tensor(TABLE), [1, 2, 4])
    type_probs = torch.tensor(q[:, None, :] * MEMBER.T[None], dtype=torch.float32)[None]   # (1, M, T, V)
    expected = head.disease_given_token(type_probs, torch.tensor(VALUE_TYPE)).numpy()[0]
    log_l = row_log_likelihood(q, TABLE, MEMBER)
    ours = np.exp(log_l - log_l.max(1, keepdims=True))
    np.testing.assert_allclose(ours / ours.sum(1, keepdims=True), expected, atol=1e-5)


def test_dividing_by_the_value_prior_lets_a_rarely_read_value_name_the_lesion():
    q = np.array([[0.6, 0.4, 1 / 3, 1 / 3, 1 / 3]])     # type 0 leans to value 0, type 1 says nothing
    prior = np.array([0.8, 0.2, 1 / 3, 1 / 3, 1 / 3])   # ... and value 0 is what it reads on most lesions
    seen = np.zeros(3)
    assert named(q, TABLE[:2], MEMBER, seen[:2], prior, alpha=0.0, penalty=0.0) == 0
    assert named(q, TABLE[:2], MEMBER, seen[:2], prior, alpha=1.0, penalty=0.0) == 1   # 0.4 / 0.2 > 0.6 / 0.8
    assert named(q, TABLE[:2], MEMBER, np.array([0.0, 1.0]), prior, alpha=1.0, penalty=2.0) == 0   # G against row 1
