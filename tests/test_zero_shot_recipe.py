"""The plugin's zero-shot trainers are the measured recipe, and nnU-Net finds them by name.

Why: the recipe's numbers (docs/benchmarks.md) were measured with a benchmark trainer named after
its history of changes; the plugin trainer a user runs must train the same model, setting for
setting, or those numbers say nothing about it.
"""

import importlib.util
import inspect
from pathlib import Path

import pytest

from nnunetv2_malenia.knowledge.vocabulary import ATTRIBUTE_TYPE_KEYS
from nnunetv2_malenia.network.config import MaleniaConfig

from nnunetv2_malenia.training.cpu_recipe import nnUNetTrainerMalenia_cpu
from nnunetv2_malenia.training.nnUNetTrainerMalenia import nnUNetTrainerMalenia, nnUNetTrainerMalenia_nameonly
from nnunetv2_malenia.training.zero_shot_recipe import (
    ZERO_SHOT_HEAD_OPTIONS,
    nnUNetTrainerMalenia_cpu_zeroshot,
    nnUNetTrainerMalenia_cpu_zeroshot_demo,
    nnUNetTrainerMalenia_nameonly_cpu_zeroshot,
    nnUNetTrainerMalenia_zeroshot,
)

BENCH_TRAINERS = Path(__file__).resolve().parents[1] / "benchmarks" / "trainers" / "nnunetv2_malenia_bench_trainers.py"
MEASURED = "nnUNetTrainerMalenia_cpu_lw01_anomalies_described_voxel_inhead_local_pertype_lesiononly_region_moreblobs"


def _settings(cls: type) -> dict:
    """Every class-level setting a trainer reads (attributes that are data, not methods)."""
    return {name: value for name, value in inspect.getmembers(cls)
            if not name.startswith("__") and not callable(value) and not isinstance(value, property)}


def _bench_class(name: str) -> type:
    spec = importlib.util.spec_from_file_location("bench_trainers_under_test", BENCH_TRAINERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def test_cpu_zeroshot_trains_exactly_the_measured_model():
    measured = _bench_class(MEASURED)
    ours, theirs = _settings(nnUNetTrainerMalenia_cpu_zeroshot), _settings(measured)
    assert ours.keys() == theirs.keys()
    differing = {name for name in ours if ours[name] != theirs[name]}
    assert differing == {"malenia_config"}, differing
    # the head differs by an eval rule measured on the trained models since, and by the one training
    # change measured on top of them (bench trainer ..._zeroshot_detached)
    assert ours["malenia_config"] == {**theirs["malenia_config"], "seen_row_penalty": 1.0,
                                      "token_backbone_gradient": 0.0}
    # the settings that make the recipe, not the base trainer's defaults
    assert ours["malenia_loss_weight"] == 0.1 and ours["lesion_region_weight"] == 1.0
    assert ours["anomalies"].probability == 1.0 and ours["anomalies"].label_in_head == "lesion"
    assert _settings(nnUNetTrainerMalenia_cpu)["anomalies"] is None


def test_cpu_zeroshot_is_the_measured_detached_trainer():
    """The detached recipe was measured as a bench trainer on top of the recipe before it; now the
    plugin's recipe, the two must train the same model."""
    assert _settings(nnUNetTrainerMalenia_cpu_zeroshot) == _settings(_bench_class("nnUNetTrainerMalenia_cpu_zeroshot_detached"))


def test_full_schedule_trainer_has_the_recipe_on_the_default_head():
    settings = _settings(nnUNetTrainerMalenia_zeroshot)
    assert settings["malenia_config"] == ZERO_SHOT_HEAD_OPTIONS
    assert "hidden_dim" not in settings["malenia_config"]   # MaleniaConfig's default head size
    assert settings["schedule"] == _settings(nnUNetTrainerMalenia)["schedule"]
    for name in ("malenia_loss_weight", "lesion_region_weight", "anomalies"):
        assert settings[name] == _settings(nnUNetTrainerMalenia_cpu_zeroshot)[name]


def test_nameonly_ablation_differs_only_in_what_a_lesion_is_aligned_to():
    ours, recipe = _settings(nnUNetTrainerMalenia_nameonly_cpu_zeroshot), _settings(nnUNetTrainerMalenia_cpu_zeroshot)
    head, recipe_head = ours.pop("malenia_config"), recipe.pop("malenia_config")
    assert ours == recipe
    # its one type (the name) is read with its context: the recipe's lesion-only types do not exist
    assert head == {**recipe_head, "voxel_readout_lesion_only_types": []}
    assert (nnUNetTrainerMalenia_nameonly_cpu_zeroshot._build_attribute_space
            is nnUNetTrainerMalenia_nameonly._build_attribute_space)


@pytest.mark.parametrize("name", ["nnUNetTrainerMalenia_zeroshot", "nnUNetTrainerMalenia_cpu_zeroshot",
                                  "nnUNetTrainerMalenia_nameonly_cpu_zeroshot",
                                  "nnUNetTrainerMalenia_cpu_zeroshot_demo"])
def test_nnunet_finds_the_zero_shot_trainers_by_name(name, monkeypatch):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2_malenia.trainer_discovery import TRAINER_FOLDER

    monkeypatch.setenv("nnUNet_extTrainer", TRAINER_FOLDER)
    found = recursive_find_trainer_class_by_name(name)
    assert found.__name__ == name
    assert found.__module__ == "nnunetv2_malenia.training.zero_shot_recipe"


@pytest.mark.parametrize("trainer, num_types", [(nnUNetTrainerMalenia_zeroshot, len(ATTRIBUTE_TYPE_KEYS)),
                                                (nnUNetTrainerMalenia_cpu_zeroshot, len(ATTRIBUTE_TYPE_KEYS)),
                                                (nnUNetTrainerMalenia_nameonly_cpu_zeroshot, 1)])
def test_each_trainers_head_is_valid_for_its_attribute_space(trainer, num_types):
    """The head options must hold for the number of attribute types the trainer aligns to (8, or the
    name-only ablation's one): a type index beyond them stops nnUNetv2_train in its constructor."""
    config = MaleniaConfig(**{**trainer.malenia_config, "text_dim": 16, "num_attribute_types": num_types,
                              "lesion_labels": (1,)})
    assert config.num_attribute_types == num_types


def test_demo_trains_the_recipe_on_a_shorter_schedule_and_scores_it_as_the_benchmark_does():
    """`malenia demo` is where a new user sees the transfer: it must be the recipe (only fewer
    steps), on the tier and with the findings rule the benchmark's numbers were measured with."""
    import sys
    from nnunetv2_malenia.commands.demo import PLANS

    ours, recipe = _settings(nnUNetTrainerMalenia_cpu_zeroshot_demo), _settings(nnUNetTrainerMalenia_cpu_zeroshot)
    schedule = ours.pop("cpu_schedule")
    recipe.pop("cpu_schedule")
    assert ours == recipe
    steps = schedule["num_epochs"] * schedule["num_iterations_per_epoch"]
    assert 0 < steps < 34 * 50

    sys.path.insert(0, str(BENCH_TRAINERS.parents[1]))
    try:
        from bench_zero_shot import TIERS
    finally:
        sys.path.pop(0)
    plan = PLANS[("cpu", False)]
    assert plan.trainer == "nnUNetTrainerMalenia_cpu_zeroshot_demo" and plan.epochs == schedule["num_epochs"]
    assert plan.preset == TIERS["cpu_varied"]["preset"] and plan.configuration == TIERS["cpu_varied"]["configuration"]
    assert plan.min_lesion_ml == TIERS["cpu_varied"]["min_lesion_ml"]
