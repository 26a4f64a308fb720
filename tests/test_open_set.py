"""Open set: a lesion no knowledge-table row explains becomes "unknown lesion"."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunetv2_malenia.inference.lesion_report import UNKNOWN_LESION, lesion_reports
from nnunetv2_malenia.inference.zero_shot_predictor import mark_unknown_lesions
from nnunetv2_malenia.network.disease_head import DiseaseHead

from test_lesion_report import _properties, network_and_table, one_window  # noqa: F401  (shared fixture)


def test_row_match_is_the_geometric_mean_of_the_mass_on_allowed_values():
    # 2 types: values 0,1 of type 0 and values 2,3 of type 1; row A allows {0} and {2, 3}, row B {1} and {3}
    head = DiseaseHead(num_values=4, num_head_classes=2)
    head.set_knowledge_table(torch.tensor([[1.0, 0, 0.3, 0.7], [0, 1.0, 0, 1.0]]), [2, 3])
    value_type = torch.tensor([0, 0, 1, 1])
    probs = torch.zeros(1, 1, 2, 4)
    probs[0, 0, 0, :2] = torch.tensor([0.8, 0.2])
    probs[0, 0, 1, 2:] = torch.tensor([0.5, 0.5])
    match = head.row_match(probs, value_type)[0, 0]
    # A: sqrt(0.8 * (0.5 + 0.5)); B: sqrt(0.2 * 0.5); weights do not matter, only which values a row allows
    assert match.tolist() == pytest.approx([np.sqrt(0.8), np.sqrt(0.1)], abs=1e-6)
    # unlike p(d | q), the match does not sum to one: it is low for both rows when neither fits
    probs[0, 0, 1, 2:] = torch.tensor([0.98, 0.02])
    probs[0, 0, 0, :2] = torch.tensor([0.02, 0.98])
    low = head.row_match(probs, value_type)[0, 0]
    assert low.max() < 0.2
    assert head.disease_given_token(probs, value_type)[0, 0].sum() == pytest.approx(1.0)


def _two_lesions():
    seg = np.zeros((24, 24, 24), dtype=np.int16)
    seg[2:6, 2:6, 2:6] = 3
    seg[15:18, 14:20, 10:13] = 5
    return seg


def test_lesions_below_the_threshold_are_reported_unknown_with_their_closest_row(network_and_table):
    network, table = network_and_table
    seg = _two_lesions()
    image = sitk.Image([24, 24, 24], sitk.sitkInt16)
    args = (network, one_window(network, torch.randn(1, 24, 24, 24)), seg,
            {3: table.disease_names[1], 5: table.disease_names[3]}, table,
            _properties(image, [[0, 24]] * 3, (24, 24, 24)), [0, 1, 2], (2.0, 2.0, 2.0))
    known = lesion_reports(*args, unknown=(1e-9, 40))
    assert [r.disease for r in known] == [table.disease_names[1], table.disease_names[3]]
    unknown = lesion_reports(*args, unknown=(0.999999, 40))
    assert [(r.disease, r.label) for r in unknown] == [(UNKNOWN_LESION, 40)] * 2
    assert [r.closest_disease for r in unknown] == [table.disease_names[1], table.disease_names[3]]
    as_dict = unknown[0].to_dict()
    assert as_dict["disease"] == UNKNOWN_LESION and as_dict["best_match"] == pytest.approx(max(as_dict["row_match"].values()), abs=1e-4)
    assert "mask" not in as_dict and "bbox" not in as_dict
    assert unknown[0].mask.sum() == 64 and unknown[1].mask.sum() == 54


def test_marking_unknown_lesions_relabels_exactly_their_voxels(network_and_table):
    network, table = network_and_table
    seg = _two_lesions()
    image = sitk.Image([24, 24, 24], sitk.sitkInt16)
    reports = lesion_reports(network, one_window(network, torch.randn(1, 24, 24, 24)), seg, {3: "a", 5: "b"}, table,
                             _properties(image, [[0, 24]] * 3, (24, 24, 24)), [0, 1, 2], (2.0, 2.0, 2.0),
                             unknown=(1e-9, 6))
    reports[1].disease, reports[1].label = UNKNOWN_LESION, 6  # only the second lesion is unknown
    logits = torch.full((7, 24, 24, 24), -20.0)
    logits[0] = 0.0
    for value in (3, 5):
        logits[value][torch.from_numpy(seg == value)] = 5.0
    before = logits.clone()
    marked = mark_unknown_lesions(logits, reports)
    assert torch.equal(logits, before)  # the input is left as it is
    labels = marked.argmax(0).numpy()
    assert (labels[seg == 3] == 3).all()
    assert (labels[seg == 5] == 6).all()
    assert (labels[seg == 0] == 0).all()


def test_a_threshold_is_stored_with_a_model_that_separates_and_predict_uses_it(tmp_path):
    from nnunetv2_malenia.inference.open_set import (MODEL_THRESHOLD_FILE, model_threshold,
                                                     resolve_unknown_threshold, store_model_threshold)

    assert resolve_unknown_threshold(None, tmp_path) == (0.0, "default")
    assert store_model_threshold(tmp_path, 0.71, 0.79, "test lesions") is None      # below 0.8: nothing written
    assert not (tmp_path / MODEL_THRESHOLD_FILE).exists()
    path = store_model_threshold(tmp_path, 0.7144, 0.83, "test lesions")
    assert path == tmp_path / MODEL_THRESHOLD_FILE and model_threshold(tmp_path) == pytest.approx(0.7144)
    assert resolve_unknown_threshold(None, tmp_path) == (pytest.approx(0.7144), str(path))
    assert resolve_unknown_threshold(0.0, tmp_path) == (0.0, "--unknown-threshold")   # the option wins, 0 turns off
    assert [p.name for p in tmp_path.iterdir()] == [MODEL_THRESHOLD_FILE]            # no temporary left behind


@pytest.mark.parametrize("text, message", [("[0.7]", "not a JSON object"), ('{"threshold": 1.5}', "got 1.5"),
                                           ('{"threshold": "0.7"}', "got '0.7'"), ("{", "not a JSON object")])
def test_a_bad_stored_threshold_names_the_file_and_the_fix(tmp_path, text, message):
    from nnunetv2_malenia.errors import MaleniaError
    from nnunetv2_malenia.inference.open_set import MODEL_THRESHOLD_FILE, model_threshold

    (tmp_path / MODEL_THRESHOLD_FILE).write_text(text)
    with pytest.raises(MaleniaError, match="open_set_threshold.json") as error:
        model_threshold(tmp_path)
    assert message in str(error.value) and "bench_open_set.py --store" in str(error.value)
