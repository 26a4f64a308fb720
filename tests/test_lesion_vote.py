"""One disease per lesion: the vote `malenia benchmark` applies before scoring the test set."""

import numpy as np
import SimpleITK as sitk

from nnunetv2_malenia.evaluation.benchmark import remap_labels
from nnunetv2_malenia.evaluation.lesion_vote import one_disease_per_lesion

LIVER, CYST, TUMOR, METASTASIS = 1, 10, 11, 12


def test_a_lesion_takes_its_majority_disease_and_organs_stay():
    labels = np.zeros((1, 12, 12), dtype=np.uint8)
    labels[0, :, :6] = LIVER
    labels[0, 1:4, 1:5] = TUMOR          # 12 voxels of tumour...
    labels[0, 4, 1:3] = CYST             # ...with a 2-voxel rim of cyst: one lesion
    labels[0, 8:10, 8:10] = METASTASIS   # a second lesion, not touching the first
    out = one_disease_per_lesion(labels, [CYST, TUMOR, METASTASIS])
    assert (out[0, 1:4, 1:5] == TUMOR).all() and (out[0, 4, 1:3] == TUMOR).all()
    assert (out[0, 8:10, 8:10] == METASTASIS).all()
    untouched = ~np.isin(labels, [CYST, TUMOR, METASTASIS])
    assert (out[untouched] == labels[untouched]).all()          # organs and background never change
    assert (labels[0, 4, 1:3] == CYST).all()                    # the input is not modified


def test_diagonal_neighbours_are_one_lesion_and_ties_go_to_the_lower_label():
    labels = np.zeros((3, 3, 3), dtype=np.uint8)
    labels[0, 0, 0], labels[1, 1, 1] = TUMOR, CYST               # 26-connected: one lesion, one vote each
    assert one_disease_per_lesion(labels, [CYST, TUMOR])[0, 0, 0] == CYST
    assert (one_disease_per_lesion(labels, []) == labels).all()  # no lesion labels: nothing to vote on


def test_benchmark_remap_votes_after_renumbering(tmp_path):
    gt_labels = {"background": 0, "liver": 1, "liver cyst": 2, "liver tumor": 3}
    pred_labels = {"background": 0, "liver": 1, "liver tumor": 2, "liver cyst": 3}   # numbered differently
    array = np.zeros((1, 6, 6), dtype=np.uint8)
    array[0, 1:4, 1:4] = 2               # 9 voxels "liver tumor" in the model's numbering
    array[0, 4, 1] = 3                   # 1 voxel "liver cyst" on its rim
    image = sitk.GetImageFromArray(array)
    (tmp_path / "raw").mkdir()
    sitk.WriteImage(image, str(tmp_path / "raw" / "case.nii.gz"))
    remap_labels(tmp_path / "raw", tmp_path / "voted", pred_labels, gt_labels, ".nii.gz",
                 vote_lesions=["liver cyst", "liver tumor"])
    remap_labels(tmp_path / "raw", tmp_path / "plain", pred_labels, gt_labels, ".nii.gz")
    voted = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "voted" / "case.nii.gz")))
    plain = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "plain" / "case.nii.gz")))
    assert sorted(np.unique(voted).tolist()) == [0, 3]           # the whole lesion is "liver tumor" (3)
    assert plain[0, 4, 1] == 2 and (plain[0, 1:4, 1:4] == 3).all()  # --voxelwise: renumbered only


def test_a_speck_under_the_minimum_size_takes_the_organ_around_it():
    labels = np.zeros((1, 12, 12), dtype=np.uint8)
    labels[0, :, :8] = LIVER
    labels[0, 1:4, 1:5] = TUMOR          # 12 voxels: a lesion
    labels[0, 8, 6:8] = METASTASIS       # 2 voxels inside the liver: a speck
    out = one_disease_per_lesion(labels, [CYST, TUMOR, METASTASIS], min_voxels=5)
    assert (out[0, 8, 6:8] == LIVER).all()
    assert (out[0, 1:4, 1:5] == TUMOR).all()
    assert (one_disease_per_lesion(labels, [CYST, TUMOR, METASTASIS])[0, 8, 6:8] == METASTASIS).all()


def test_benchmark_min_lesion_volume_uses_the_image_spacing(tmp_path):
    gt_labels = pred_labels = {"background": 0, "liver": 1, "liver cyst": 2}
    array = np.ones((1, 6, 6), dtype=np.uint8)
    array[0, 1:3, 1:3] = 2               # 4 voxels of 2 x 2 x 2.5 mm = 0.04 ml
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 2.5))
    (tmp_path / "raw").mkdir()
    sitk.WriteImage(image, str(tmp_path / "raw" / "case.nii.gz"))
    for ml, expected in ((0.05, 1), (0.04, 2)):
        remap_labels(tmp_path / "raw", tmp_path / f"out{ml}", pred_labels, gt_labels, ".nii.gz",
                     vote_lesions=["liver cyst"], min_lesion_ml=ml)
        out = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"out{ml}" / "case.nii.gz")))
        assert out[0, 1, 1] == expected, ml
