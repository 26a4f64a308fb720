"""Per-lesion reports: world coordinates through nnU-Net's transpose/crop/resample, and the readout."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunetv2_malenia.inference.lesion_report import lesion_reports, working_to_world
from nnunetv2_malenia.knowledge import load_knowledge_table
from nnunetv2_malenia.network import MaleniaConfig, build_malenia_network
from nnunetv2_malenia.network.toy import unet_plans


def _properties(image: sitk.Image, bbox, shape_before) -> dict:
    return {"sitk_stuff": {"spacing": image.GetSpacing(), "origin": image.GetOrigin(), "direction": image.GetDirection()},
            "bbox_used_for_cropping": bbox, "shape_after_cropping_and_before_resampling": shape_before}


def test_working_index_maps_back_to_the_input_images_world_coordinates():
    image = sitk.Image([20, 30, 40], sitk.sitkInt16)  # x, y, z; numpy array is (40, 30, 20)
    image.SetSpacing((0.8, 1.0, 2.5))
    image.SetOrigin((-10.0, 5.0, 100.0))
    image.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, -1))
    transpose_forward = [2, 1, 0]  # nnU-Net's transposed array is (x, y, z) here
    bbox = [[2, 18], [3, 27], [4, 36]]  # in transposed coordinates
    shape_before = (16, 24, 32)
    working_shape = (8, 24, 64)  # resampled by 0.5, 1, 2 per axis
    # a point at transposed-array index (10.5, 13, 20.25) before resampling, i.e. sitk index (x=10.5, y=13, z=20.25)
    cropped = np.array([10.5, 13.0, 20.25]) - np.array([b[0] for b in bbox])
    working = (cropped + 0.5) * np.array(working_shape) / np.array(shape_before) - 0.5
    world = working_to_world(working, _properties(image, bbox, shape_before), transpose_forward, working_shape)
    expected = image.TransformContinuousIndexToPhysicalPoint((10.5, 13.0, 20.25))
    np.testing.assert_allclose(world, expected, atol=1e-6)


@pytest.fixture(scope="module")
def network_and_table():
    table = load_knowledge_table()
    plans = unet_plans([8, 16, 32])
    config = MaleniaConfig(hidden_dim=32, num_tokens=4, num_heads=4, ffn_dim=64, fusion_layers=1, text_dim=12,
                           lesion_labels=(2,))
    torch.manual_seed(0)
    network = build_malenia_network(plans["network_class_name"], plans["arch_kwargs"], plans["_kw_requires_import"],
                                    1, 3, config, len(table.vocabulary.phrases), deep_supervision=False)
    network.set_vocabulary(torch.randn(len(table.vocabulary.phrases), 12), torch.tensor(table.vocabulary.value_type))
    network.set_knowledge_table(torch.from_numpy(table.weight_matrix()), list(range(2, 2 + len(table.diseases))))
    return network.eval(), table


def test_reports_read_one_token_per_lesion(network_and_table):
    network, table = network_and_table
    seg = np.zeros((24, 24, 24), dtype=np.int16)
    seg[2:6, 2:6, 2:6] = 3  # 64 voxels, near a corner: the window must stay inside the image
    seg[15:18, 14:20, 10:13] = 5  # 54 voxels
    image = sitk.Image([24, 24, 24], sitk.sitkInt16)
    image.SetSpacing((2.0, 2.0, 2.0))
    properties = _properties(image, [[0, 24]] * 3, (24, 24, 24))
    disease_of_label = {3: table.disease_names[1], 5: table.disease_names[3]}
    reports = lesion_reports(network, torch.randn(1, 24, 24, 24), seg, disease_of_label, table, properties,
                             [0, 1, 2], (16, 16, 16), (2.0, 2.0, 2.0))
    assert [(r.label, r.voxels) for r in reports] == [(3, 64), (5, 54)]
    first = reports[0]
    assert first.disease == table.disease_names[1]
    assert first.volume_ml == pytest.approx(64 * 8 / 1000)
    np.testing.assert_allclose(first.centroid_mm, [7.0, 7.0, 7.0])  # index 3.5 at 2 mm, origin 0
    assert set(first.row_scores) == set(table.disease_names)
    assert sum(first.row_scores.values()) == pytest.approx(1.0, abs=1e-4)
    assert list(first.attributes) == list(table.vocabulary.type_keys)
    for key, readout in first.attributes.items():
        assert readout["value"] in table.vocabulary.type(key).values
        assert 0.0 <= readout["similarity"] <= 1.0
    assert 0.0 <= first.objectness <= 1.0
    assert set(first.to_dict()) >= {"disease", "row_scores", "attributes", "volume_ml", "centroid_mm"}


def test_overlay_png_shows_each_lesion(tmp_path):
    from PIL import Image

    from nnunetv2_malenia.inference.overlays import write_overlay

    ct = sitk.GetImageFromArray(np.full((12, 20, 20), 40, dtype=np.int16))
    ct.SetSpacing((1.5, 1.5, 3.0))
    labels = np.zeros((12, 20, 20), dtype=np.uint8)
    labels[5:8, 4:9, 4:9] = 10
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(ct)
    sitk.WriteImage(ct, str(tmp_path / "case_0000.nii.gz"))
    sitk.WriteImage(label_image, str(tmp_path / "case.nii.gz"))
    centroid = ct.TransformContinuousIndexToPhysicalPoint((6.0, 6.0, 6.0))
    lesion = {"label": 10, "disease": "liver cyst", "volume_ml": 0.5, "centroid_mm": list(centroid),
              "row_scores": {"liver cyst": 0.9}, "attributes": {"shape": {"value": "round-like", "similarity": 0.8}}}
    write_overlay(tmp_path / "case_0000.nii.gz", tmp_path / "case.nii.gz", [lesion, dict(lesion, volume_ml=0.2)],
                  tmp_path / "two.png")
    write_overlay(tmp_path / "case_0000.nii.gz", tmp_path / "case.nii.gz", [], tmp_path / "none.png")
    two, none = Image.open(tmp_path / "two.png"), Image.open(tmp_path / "none.png")
    assert two.size[0] > 1.8 * none.size[0]  # one panel per lesion
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.nii.gz", "case_0000.nii.gz", "none.png", "two.png"]


def test_lesions_inside_one_window_share_one_network_pass(network_and_table, monkeypatch):
    network, table = network_and_table
    seg = np.zeros((16, 16, 16), dtype=np.int16)
    seg[2:4, 2:4, 2:4] = 3
    seg[10:12, 10:12, 10:12] = 3
    calls = []
    original = network.predict_details
    monkeypatch.setattr(network, "predict_details", lambda x: calls.append(x.shape) or original(x))
    image = sitk.Image([16, 16, 16], sitk.sitkInt16)
    reports = lesion_reports(network, torch.randn(1, 16, 16, 16), seg, {3: table.disease_names[0]}, table,
                             _properties(image, [[0, 16]] * 3, (16, 16, 16)), [0, 1, 2], (16, 16, 16), (1.0, 1.0, 1.0))
    assert len(reports) == 2 and len(calls) == 1
