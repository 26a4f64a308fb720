"""Fold-wise benchmark tables: label groups, renumbering by name, mean ± std over folds."""

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_malenia.evaluation.benchmark import (SEEN, UNSEEN, BenchmarkResult, ClassScore, label_groups,
                                                   markdown, remap_labels, summary_json)

TEST_LABELS = {"labels": {"background": 0, "liver": 1, "liver cyst": 2, "kidney cyst": 3, "pancreas cyst": 4},
               "organ_labels": {"liver": 1}, "seen_diseases": {"liver cyst": 2, "kidney cyst": 3},
               "unseen_diseases": {"pancreas cyst": 4}}


def test_groups_come_from_the_test_label_list_or_the_datasets_lesion_labels():
    assert label_groups(TEST_LABELS) == {"liver": "organ", "liver cyst": SEEN, "kidney cyst": SEEN,
                                         "pancreas cyst": UNSEEN}
    dataset = {"labels": {"background": 0, "liver": 1, "liver cyst": 2}, "malenia": {"lesion_labels": [2]}}
    assert label_groups(dataset) == {"liver": "organ", "liver cyst": SEEN}


def test_predictions_are_renumbered_by_label_name(tmp_path):
    # a model trained with the unseen disease labelled numbers its labels differently
    pred_labels = {"background": 0, "liver": 1, "pancreas cyst": 2, "liver cyst": 3, "kidney cyst": 4, "other": 5}
    array = np.array([[[0, 1, 2, 3, 4, 5]]], dtype=np.uint8)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.5, 1.5, 3.0))
    (tmp_path / "raw").mkdir()
    sitk.WriteImage(image, str(tmp_path / "raw" / "case.nii.gz"))
    remap_labels(tmp_path / "raw", tmp_path / "out", pred_labels, TEST_LABELS["labels"], ".nii.gz")
    out = sitk.ReadImage(str(tmp_path / "out" / "case.nii.gz"))
    # a name the ground truth lacks goes above all of its labels
    assert sitk.GetArrayFromImage(out).ravel().tolist() == [0, 1, 4, 2, 3, 5]
    assert out.GetSpacing() == pytest.approx((1.5, 1.5, 3.0))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["case.nii.gz"]  # nothing half-written left


def _result() -> BenchmarkResult:
    malenia = {"liver cyst": ClassScore("liver cyst", SEEN, {0: 0.8, 1: 0.6}, {0: 0.9, 1: 0.7}),
               "pancreas cyst": ClassScore("pancreas cyst", UNSEEN, {0: 0.5, 1: math.nan}, {0: 0.4, 1: math.nan})}
    return BenchmarkResult(["A"], [0, 1], {"test": {"A": malenia}, "cv": {}}, {"A": {"predict_s_fold_0": 12.0}}, 2.0, [])


def test_table_gives_mean_and_std_over_folds_seen_and_unseen_apart():
    table = markdown(_result())
    assert "| A DSC | A NSD |" in table
    assert "| **seen lesion classes** |" in table and "| **unseen lesion classes (zero-shot)** |" in table
    assert "| liver cyst | 70.0 ± 10.0 | 80.0 ± 10.0 |" in table
    assert "| pancreas cyst | 50.0 | 40.0 |" in table  # a fold without the class is left out, not counted as 0
    assert "Cross-validation" not in table  # no cross-validation scores, no section
    summary = summary_json(_result())["sources"]["test"]["A"]
    assert summary["classes"]["liver cyst"]["dsc"] == {"mean": pytest.approx(0.7), "std": pytest.approx(0.1), "n": 2}
    assert summary["groups"][UNSEEN]["dsc"] == {"mean": 0.5, "std": 0.0, "n": 1}
    json.dumps(summary)  # serialisable as written to benchmark.json


def test_case_presence_auroc_on_a_hand_made_case_list():
    from sklearn.metrics import roc_auc_score

    from nnunetv2_malenia.evaluation.case_presence import presence_auroc

    truth = {"a": {"liver cyst"}, "b": set(), "c": {"liver cyst", "kidney cyst"}, "d": {"kidney cyst"}}
    scores = {"a": {"liver cyst": 0.9, "kidney cyst": 0.2}, "b": {"liver cyst": 0.4, "kidney cyst": 0.3},
              "c": {"liver cyst": 0.3, "kidney cyst": 0.8}}   # d has no score: counts as 0
    auroc = presence_auroc(scores, truth, ["liver cyst", "kidney cyst", "pancreas cyst"])
    # liver cyst: positives a (0.9), c (0.3); negatives b (0.4), d (0): 3 of 4 pairs ordered right
    assert auroc["liver cyst"] == pytest.approx(0.75)
    assert auroc["kidney cyst"] == pytest.approx(roc_auc_score([0, 0, 1, 1], [0.2, 0.3, 0.8, 0.0]))
    assert math.isnan(auroc["pancreas cyst"])   # no positive case: undefined


def test_case_presence_table_and_json_give_auroc_per_disease_seen_and_unseen_apart():
    result = _result()
    result.scores["test"]["A"]["kidney cyst"] = ClassScore("kidney cyst", SEEN, {0: 0.5, 1: 0.5}, {0: 0.5, 1: 0.5})
    result.presence = {"A": {"liver cyst": {0: 0.8, 1: 0.6}, "kidney cyst": {0: 1.0, 1: 1.0},
                             "pancreas cyst": {0: 0.5, 1: math.nan}}}
    table = markdown(result)
    assert "### Case-level presence (test set, AUROC in %)" in table
    assert "| liver cyst | 70.0 ± 10.0 |" in table and "| pancreas cyst | 50.0 |" in table
    seen_mean = table.split("| **unseen lesion classes (zero-shot)** |")[-2].strip().splitlines()[-1]
    assert seen_mean == "| *mean* | 85.0 ± 5.0 |"   # folds: (0.8+1)/2, (0.6+1)/2
    assert summary_json(result)["case_presence_auroc"]["A"]["pancreas cyst"] == {"0": 0.5, "1": None}
