import numpy as np
import pytest
import torch

from nnunetv2_malenia.knowledge import LesionAttributes, LesionRecord, load_knowledge_table
from nnunetv2_malenia.training.lesion_targets import LesionAttributeLookup, build_lesion_targets, connected_lesions


@pytest.fixture(scope="module")
def table():
    return load_knowledge_table()


def _segmentation() -> np.ndarray:
    seg = np.zeros((16, 16, 16), dtype=np.int16)
    seg[1:15, 1:15, 1:15] = 1  # organ
    seg[2:6, 2:6, 2:6] = 2  # lesion A, 64 voxels
    seg[10:12, 10:12, 10:12] = 2  # lesion B, same label, 8 voxels
    seg[2:5, 10:13, 10:13] = 3  # lesion C, other label, 27 voxels
    return seg


def test_components_per_label_largest_first_and_capped():
    found = connected_lesions(_segmentation(), [2, 3], max_instances=10)
    assert [(label, int(mask.sum())) for label, mask in found] == [(2, 64), (3, 27), (2, 8)]
    capped = connected_lesions(_segmentation(), [2, 3], max_instances=2)
    assert [int(mask.sum()) for _, mask in capped] == [64, 27]


def test_attributes_from_record_else_table_row(table):
    vocab = table.vocabulary
    record_attrs = {k: vocab.type(k).values[0] for k in vocab.type_keys}
    record_attrs["specific_features"] = ["calcified foci", "cavitation"]
    lesions = LesionAttributes(vocab.name)
    lesions.add("case_a", 2, LesionRecord("kidney tumor", record_attrs))
    lookup = LesionAttributeLookup(vocab, table, {2: "kidney tumor", 3: "kidney cyst"}, lesions)

    with pytest.warns(UserWarning, match="no lesion attributes for case 'case_a' label 3"):
        patch, labels = build_lesion_targets(_segmentation(), "case_a", lookup, max_instances=8)
    assert labels == [2, 3, 2]
    assert patch.masks.shape == (3, 16, 16, 16) and patch.masks.sum().item() == 64 + 27 + 8 and patch.masks.dtype == torch.bool
    from_record = patch.attribute_targets[0]
    assert from_record.sum().item() == 9  # one per single-valued type + two specific features
    assert from_record[vocab.value_index("specific_features", "cavitation")]
    fallback = patch.attribute_targets[1].numpy()
    cyst = table.row("kidney cyst")
    assert fallback[vocab.value_index("shape", cyst.most_likely("shape"))]
    assert fallback.sum() == len(vocab.type_keys)


def test_patch_without_lesions(table):
    lookup = LesionAttributeLookup(table.vocabulary, table, {2: "kidney tumor"})
    patch, labels = build_lesion_targets(np.ones((8, 8, 8), dtype=np.int16), "x", lookup, max_instances=4)
    assert labels == []
    assert patch.masks.shape == (0, 8, 8, 8)
    assert patch.attribute_targets.shape == (0, len(table.vocabulary.phrases))
