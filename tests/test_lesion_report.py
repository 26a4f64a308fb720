"""Per-lesion reports: world coordinates through nnU-Net's transpose/crop/resample, and the readout."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunetv2_malenia.inference.lesion_report import lesion_reports, working_to_world
from nnunetv2_malenia.inference.window_tokens import WindowRecorder
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


def _tiny_network(**options):
    """A tiny untrained Malenia network over the default table (head options on top of a tiny size)."""
    table = load_knowledge_table()
    plans = unet_plans([8, 16, 32])
    config = MaleniaConfig(**{"hidden_dim": 32, "num_tokens": 4, "num_heads": 4, "ffn_dim": 64, "fusion_layers": 1,
                              "text_dim": 12, "lesion_labels": (2,), **options})
    torch.manual_seed(0)
    network = build_malenia_network(plans["network_class_name"], plans["arch_kwargs"], plans["_kw_requires_import"],
                                    1, 3, config, len(table.vocabulary.phrases), deep_supervision=False)
    network.set_vocabulary(torch.randn(len(table.vocabulary.phrases), 12), torch.tensor(table.vocabulary.value_type))
    network.set_knowledge_table(torch.from_numpy(table.weight_matrix()), list(range(2, 2 + len(table.diseases))))
    return network.eval(), table


@pytest.fixture(scope="module")
def network_and_table():
    return _tiny_network()


def one_window(network, data: torch.Tensor) -> WindowRecorder:
    """What the predictor records on an image that is one window: one pass over all of it."""
    recorder = WindowRecorder(tuple(data.shape[1:]), network.disease_head.label_of_disease)
    recorder.start_pass(tuple(data.shape[1:]), [(slice(None), *[slice(0, s) for s in data.shape[1:]])])
    with torch.no_grad():
        recorder.add(network.predict_details(data[None]))
    return recorder


def test_reports_read_one_token_per_lesion(network_and_table):
    network, table = network_and_table
    seg = np.zeros((24, 24, 24), dtype=np.int16)
    seg[2:6, 2:6, 2:6] = 3  # 64 voxels, near a corner: the window must stay inside the image
    seg[15:18, 14:20, 10:13] = 5  # 54 voxels
    image = sitk.Image([24, 24, 24], sitk.sitkInt16)
    image.SetSpacing((2.0, 2.0, 2.0))
    properties = _properties(image, [[0, 24]] * 3, (24, 24, 24))
    disease_of_label = {3: table.disease_names[1], 5: table.disease_names[3]}
    reports = lesion_reports(network, one_window(network, torch.randn(1, 24, 24, 24)), seg, disease_of_label, table,
                             properties, [0, 1, 2], (2.0, 2.0, 2.0))
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


def one_lesion_case(seed: int):
    """A random 16^3 image that is one window, with one lesion of label 3, and its properties."""
    torch.manual_seed(seed)
    seg = np.zeros((16, 16, 16), dtype=np.int16)
    seg[3:8, 4:9, 2:6] = 3
    image = sitk.Image([16, 16, 16], sitk.sitkInt16)
    return torch.randn(1, 16, 16, 16), seg, _properties(image, [[0, 16]] * 3, (16, 16, 16))


def report_and_details(network, table, data, seg, properties):
    """The one lesion's report from a one-window pass, and the network's own details of that pass."""
    (report,) = lesion_reports(network, one_window(network, data), seg, {3: table.disease_names[2]}, table,
                               properties, [0, 1, 2], (1.0, 1.0, 1.0))
    with torch.no_grad():
        return report, network.predict_details(data[None])


def test_a_one_window_report_is_the_best_overlapping_tokens_readout(network_and_table):
    """The report's values are those of the token with the best soft Dice against the lesion
    (the rule of the former per-lesion pass), read from the one pass."""
    network, table = network_and_table
    data, seg, properties = one_lesion_case(seed=1)
    report, details = report_and_details(network, table, data, seg, properties)
    probs = details["token_probs"][0].flatten(1)
    lesion = torch.from_numpy(seg == 3).flatten().float()
    token = int((2 * probs @ lesion / (probs.sum(1) + lesion.sum() + 1e-6)).argmax())
    expected = details["attribute_probs"][0, token]
    for t, (key, readout) in enumerate(report.attributes.items()):
        value = int(expected[t].argmax())
        assert readout["value"] == table.vocabulary.phrases[value]
        assert readout["similarity"] == pytest.approx(float(expected[t, value]), abs=1e-4)
    np.testing.assert_allclose(list(report.row_scores.values()), details["disease_given_token"][0, token].numpy(), atol=1e-5)
    match = network.disease_head.row_match(details["attribute_probs"], network.attributes.value_type)[0, token]
    np.testing.assert_allclose(list(report.row_match.values()), match.numpy(), atol=1e-5)
    assert report.objectness == pytest.approx(float(details["objectness"][0, token]), abs=1e-6)


def test_the_predictor_keeps_every_windows_tokens_from_its_own_sliding_window_pass(network_and_table):
    """nnU-Net's sliding window (padding, overlapping windows, mirroring) runs once; the recorder
    holds each window's unmirrored tokens at the window's place in the image."""
    from types import SimpleNamespace

    from nnunetv2_malenia.inference.zero_shot_predictor import ZeroShotPredictor

    network, table = network_and_table
    predictor = ZeroShotPredictor(tile_step_size=0.5, use_mirroring=True, device=torch.device("cpu"),
                                  allow_tqdm=False)
    predictor.network = network
    predictor.configuration_manager = SimpleNamespace(patch_size=[16, 16, 16])
    predictor.label_manager = SimpleNamespace(num_segmentation_heads=int(network.disease_head.num_labels))
    predictor.allowed_mirroring_axes = (0, 1, 2)
    predictor.list_of_parameters = [network.state_dict()]
    data = torch.randn(1, 28, 12, 16)   # 3 windows along x (x = 0, 6, 12; step 0.5), padded to 16 along y
    calls = []
    original = network.predict_details
    network.predict_details = lambda x: calls.append(x.shape) or original(x)
    try:
        logits, windows = predictor.predict_with_windows(data)
    finally:
        del network.predict_details
    assert logits.shape == (int(network.disease_head.num_labels), 28, 12, 16)
    assert len(calls) == 3 * 8                       # 3 windows x (1 + 7 mirrored passes), nothing else
    assert [w.region for w in windows.windows] == [(slice(x, x + 16), slice(0, 12), slice(0, 16)) for x in (0, 6, 12)]
    padded = torch.nn.functional.pad(data, (0, 0, 2, 2))   # nnU-Net pads y 12 -> 16, 2 voxels before
    with torch.no_grad():
        second = original(padded[None, :, 12:28])
    kept = second["token_probs"][0][:, :, 2:14].flatten(1)
    np.testing.assert_allclose(windows.windows[2].mask_total, kept.sum(1).numpy(), rtol=1e-4)
    np.testing.assert_allclose(windows.windows[2].attribute_probs, second["attribute_probs"][0].numpy(), atol=1e-5)
    lesion = np.zeros((28, 12, 16), dtype=bool)
    lesion[23:27, 3:8, 5:9] = True                   # only in the last window
    window, token = windows.best_token(lesion)
    assert window is windows.windows[2]
    inside = torch.from_numpy(lesion[12:28].ravel()).float()
    assert token == int((2 * kept @ inside / (kept.sum(1) + inside.sum() + 1e-6)).argmax())


def test_case_scores_are_the_strongest_tokens_objectness_times_disease_probability(network_and_table):
    network, table = network_and_table
    data = torch.randn(1, 16, 16, 16)
    recorder = one_window(network, data)
    with torch.no_grad():
        details = network.predict_details(data[None])
    scores = recorder.case_scores(list(table.disease_names))
    expected = (details["objectness"][0, :, None] * details["disease_given_token"][0]).max(0).values
    assert list(scores) == list(table.disease_names)
    np.testing.assert_allclose(list(scores.values()), expected.numpy(), atol=1e-6)
    empty = WindowRecorder((16, 16, 16), network.disease_head.label_of_disease)
    assert set(empty.case_scores(["a", "b"]).values()) == {0.0}


@pytest.fixture(scope="module")
def voxel_named_network():
    """The zero-shot recipe's head options: lesion voxels named by the per-voxel readout, lesion
    presence from nnU-Net's head."""
    from nnunetv2_malenia.training.zero_shot_recipe import ZERO_SHOT_HEAD_OPTIONS

    return _tiny_network(**ZERO_SHOT_HEAD_OPTIONS)


def test_a_voxel_named_models_report_reads_the_lesions_voxels_not_a_token(voxel_named_network, network_and_table):
    """What named the lesion speaks for it: the per-voxel readout averaged over the lesion's voxels
    (attributes, row scores, row match), not the best-overlapping token."""
    network, table = voxel_named_network
    data, seg, properties = one_lesion_case(seed=2)
    report, details = report_and_details(network, table, data, seg, properties)
    where = details["voxel_where"][0]
    lesion = torch.from_numpy(seg == 3)
    assert (where & lesion).any()
    rows = torch.cumsum(where.flatten().long(), 0).reshape(where.shape) - 1   # readout row of each read voxel
    read = details["voxel_attribute_probs"][rows[where & lesion]].mean(0)        # (T, V)
    assert report.readout == "voxels" and report.to_dict()["readout"] == "voxels"
    for t, (key, readout) in enumerate(report.attributes.items()):
        value = int(read[t].argmax())
        assert readout["value"] == table.vocabulary.phrases[value]
        assert readout["similarity"] == pytest.approx(float(read[t, value]), abs=1e-4)
    expected_scores = details["voxel_disease"][0][:, where & lesion].mean(1)
    np.testing.assert_allclose(list(report.row_scores.values()), expected_scores.numpy(), atol=1e-5)
    match = network.disease_head.row_match(read[None, None], network.attributes.value_type)[0, 0]
    np.testing.assert_allclose(list(report.row_match.values()), match.numpy(), atol=1e-5)
    token_window = one_window(network, data)
    token_window.windows[0].voxel_indices = np.zeros(0, dtype=np.int64)   # nothing read: the token speaks
    (fallback,) = lesion_reports(network, token_window, seg, {3: table.disease_names[2]}, table,
                                 properties, [0, 1, 2], (1.0, 1.0, 1.0))
    assert fallback.readout == "token" and fallback.attributes != report.attributes
    token_network, _ = network_and_table
    (by_token,) = lesion_reports(token_network, one_window(token_network, data), seg, {3: table.disease_names[2]},
                                 table, properties, [0, 1, 2], (1.0, 1.0, 1.0))
    assert by_token.readout == "token"
