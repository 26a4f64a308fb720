"""The `3d_cpu` plans configuration and the CPU training recipe."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.planning.cpu_configuration import add_cpu_configuration, cpu_configuration


def _parent(n_stages: int = 5, patch=(80, 80, 80)) -> dict:
    return {
        "data_identifier": "nnUNetPlans_3d_fullres", "batch_size": 2, "patch_size": list(patch),
        "spacing": [2.5, 2.5, 2.5],
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": n_stages, "features_per_stage": [32, 64, 128, 256, 320][:n_stages],
                "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [[3, 3, 3]] * n_stages,
                "strides": [[1, 1, 1]] + [[2, 2, 2]] * (n_stages - 1), "n_conv_per_stage": [2] * n_stages,
                "n_conv_per_stage_decoder": [2] * (n_stages - 1), "conv_bias": True,
                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
            },
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        },
    }


def _plans_file(tmp_path: Path, parent: dict) -> Path:
    plans = {"dataset_name": "Dataset951_Cpu", "plans_name": "nnUNetPlans", "original_median_spacing_after_transp": [2.5] * 3,
             "original_median_shape_after_transp": [48, 48, 48], "image_reader_writer": "SimpleITKIO",
             "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
             "configurations": {"3d_fullres": parent}, "experiment_planner_used": "ExperimentPlanner",
             "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {}}
    path = tmp_path / "nnUNetPlans.json"
    path.write_text(json.dumps(plans))
    return path


def test_child_gives_the_whole_architecture_and_keeps_the_parents_data():
    parent = _parent()
    before = copy.deepcopy(parent)
    child = cpu_configuration(parent, (16, 32, 64, 128), 2)
    kwargs = child["architecture"]["arch_kwargs"]
    assert child["inherits_from"] == "3d_fullres" and child["data_identifier"] == "nnUNetPlans_3d_fullres"
    assert kwargs["n_stages"] == 4 and kwargs["features_per_stage"] == [16, 32, 64, 128]
    assert len(kwargs["kernel_sizes"]) == len(kwargs["strides"]) == len(kwargs["n_conv_per_stage"]) == 4
    assert len(kwargs["n_conv_per_stage_decoder"]) == 3
    assert child["batch_size"] == 2 and child["patch_size"] == [80, 80, 80]   # 80 is divisible by 2^3
    assert child["batch_dice"] is True                                        # the calibrated default
    assert cpu_configuration(parent, (16, 32, 64, 128), 2, batch_dice=False)["batch_dice"] is False
    assert parent == before                                                   # the parent is untouched


def test_patch_is_rounded_down_to_the_networks_downsampling():
    child = cpu_configuration(_parent(patch=(52, 60, 44)), (16, 32, 64, 128), 2)
    assert child["patch_size"] == [48, 56, 40]


@pytest.mark.parametrize("features, message", [
    ((8, 16, 32, 64, 128, 256), "--features has 6 stages but 3d_fullres has only 5"),
    ((), "give one positive width per stage"),
])
def test_bad_requests_name_the_option(features, message):
    with pytest.raises(MaleniaError, match=message):
        cpu_configuration(_parent(), features, 2)


def test_nnunet_reads_the_configuration_and_builds_both_networks(tmp_path: Path):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunetv2_malenia.network.config import PLANS_KEY, MaleniaConfig
    from nnunetv2_malenia.network.malenia_network import MaleniaNetwork
    from nnunetv2_malenia.training.nnUNetTrainerMalenia import nnUNetTrainerMalenia

    plans_file = _plans_file(tmp_path, _parent(patch=(48, 48, 48)))
    add_cpu_configuration(plans_file, features=(16, 32, 64, 128), batch_size=2)
    plans = json.loads(plans_file.read_text())
    plans[PLANS_KEY] = {"config": MaleniaConfig(hidden_dim=64, num_tokens=8, num_heads=4, ffn_dim=128, fusion_layers=1,
                                                lesion_labels=(3, 4)).to_dict(), "num_values": 20}
    manager = PlansManager(plans)
    config = manager.get_configuration("3d_cpu")
    assert config.batch_size == 2 and list(config.patch_size) == [48, 48, 48]
    assert config.data_identifier == manager.get_configuration("3d_fullres").data_identifier
    assert config.spacing == [2.5, 2.5, 2.5]                                   # inherited
    assert config.batch_dice is True                                           # overrides 3d_fullres's
    plain = nnUNetTrainer.build_network_architecture(manager, config, 1, 5, True)
    widths = [stage[-1].convs[-1].conv.out_channels for stage in plain.encoder.stages]
    assert widths == [16, 32, 64, 128]
    assert plain(torch.zeros(1, 1, 48, 48, 48))[0].shape == (1, 5, 48, 48, 48)

    malenia = nnUNetTrainerMalenia.build_network_architecture(manager, config, 1, 5, True)
    assert isinstance(malenia, MaleniaNetwork)
    backbone = [m for m in malenia.modules() if type(m).__name__ == "PlainConvUNet"][0]
    assert [stage[-1].convs[-1].conv.out_channels for stage in backbone.encoder.stages] == [16, 32, 64, 128]


def test_cpu_recipe_drops_noise_and_mirroring_and_uses_adamw():
    from batchgeneratorsv2.transforms.intensity.gaussian_noise import GaussianNoiseTransform
    from batchgeneratorsv2.transforms.utils.random import RandomTransform
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunetv2_malenia.training.cpu_recipe import nnUNetTrainer_cpu

    args = dict(patch_size=(48, 48, 48), rotation_for_DA=(0.5, 0.5), deep_supervision_scales=None,
                mirror_axes=None, do_dummy_2d_data_aug=False)
    inner = lambda t: t.transform if isinstance(t, RandomTransform) else t  # noqa: E731
    stock = [type(inner(t)) for t in nnUNetTrainer.get_training_transforms(**args).transforms]
    ours = [type(inner(t)) for t in nnUNetTrainer_cpu.get_training_transforms(**args).transforms]
    assert GaussianNoiseTransform in stock and GaussianNoiseTransform not in ours
    assert [t for t in stock if t is not GaussianNoiseTransform] == ours


def test_the_command_defaults_to_the_calibrated_widths():
    from conftest import run_malenia

    from nnunetv2_malenia.planning.cpu_configuration import CPU_FEATURES

    result = run_malenia("cpu-config", "--help")
    assert result.returncode == 0, result.stderr
    assert f"(default: {' '.join(map(str, CPU_FEATURES))})" in " ".join(result.stdout.split())
