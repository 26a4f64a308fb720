"""The benchmark scripts find benchmarks/trainers by name, in their children and in-process.

Why: the probes load a trained benchmark model in-process (its plans name the trainer class); they
used to fail unless the user had exported nnUNet_extTrainer by hand (docs/benchmarks.md, 2026-12-04).
"""

import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_training as bt  # noqa: E402


def test_bench_trainers_come_first_once_and_keep_the_plugin_folder():
    env = {"nnUNet_extTrainer": os.pathsep.join(["/plugin/trainers", str(bt.TRAINER_DIR)])}
    assert bt.with_bench_trainers(env) is env
    bt.with_bench_trainers(env)
    assert env["nnUNet_extTrainer"].split(os.pathsep) == [str(bt.TRAINER_DIR), "/plugin/trainers"]
    assert bt.with_bench_trainers({})["nnUNet_extTrainer"] == str(bt.TRAINER_DIR)


def test_nnunet_finds_a_benchmark_trainer_in_process(monkeypatch):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    monkeypatch.setenv("nnUNet_extTrainer", "")
    with pytest.raises(RuntimeError, match="nnUNetTrainer_cpu_twothirds"):
        recursive_find_trainer_class_by_name("nnUNetTrainer_cpu_twothirds")
    bt.with_bench_trainers(os.environ)
    assert recursive_find_trainer_class_by_name("nnUNetTrainer_cpu_twothirds").__name__ == "nnUNetTrainer_cpu_twothirds"


def test_reuse_compares_the_trainers_settings_not_only_the_schedule(tmp_path):
    settings = bt.trainer_settings("nnUNetTrainerMalenia_cpu_zeroshot_featureblobs")
    assert settings["anomalies"]["feature_probability"] == 0.75
    assert settings["malenia_config"]["token_backbone_gradient"] == 0.0
    assert bt.settings_changed({"trainer_settings": settings}, settings, tmp_path, "T") is None
    other = bt.trainer_settings("nnUNetTrainerMalenia_cpu_zeroshot_detached")
    assert bt.settings_changed({"trainer_settings": other}, settings, tmp_path, "T") == \
        "the trainer's settings changed (anomalies)"
    assert bt.trainer_settings("NoSuchTrainer") == {}


def test_an_option_added_after_a_record_counts_as_its_default_and_retrains_only_who_sets_it(tmp_path):
    """A record written before AnomalyConfig.lobe_probability existed lacks the field: the detached
    recipe (lobe_probability at its default 0) is reused, the lobed-blob trainer (1/3) is not."""
    detached = bt.trainer_settings("nnUNetTrainerMalenia_cpu_zeroshot_detached")
    old_record = {**detached, "anomalies": {k: v for k, v in detached["anomalies"].items() if k != "lobe_probability"}}
    assert bt.settings_changed({"trainer_settings": old_record}, detached, tmp_path,
                               "nnUNetTrainerMalenia_cpu_zeroshot_detached") is None
    lobed = bt.trainer_settings("nnUNetTrainerMalenia_cpu_zeroshot_lobedblobs")
    assert bt.settings_changed({"trainer_settings": old_record}, lobed, tmp_path,
                               "nnUNetTrainerMalenia_cpu_zeroshot_lobedblobs") == "the trainer's settings changed (anomalies)"
    assert bt.dataclass_defaults("NoSuchTrainer") == {}


def test_reuse_of_an_old_record_reads_the_head_options_its_model_folder_stored(tmp_path):
    import json

    settings = bt.trainer_settings("nnUNetTrainerMalenia_cpu_zeroshot")
    stored = {k: v for k, v in settings["malenia_config"].items() if k != "token_backbone_gradient"}
    (tmp_path / "plans.json").write_text(json.dumps({"malenia": {"config": stored}}))
    # the recipe before it detached the token path: the field unset, so MaleniaConfig's default 1.0
    assert bt.settings_changed({}, settings, tmp_path, "T") == \
        f"head option token_backbone_gradient is 0.0 in T and 1.0 in {tmp_path / 'plans.json'}"
    stored["token_backbone_gradient"] = 0.0
    (tmp_path / "plans.json").write_text(json.dumps({"malenia": {"config": stored}}))
    assert bt.settings_changed({}, settings, tmp_path, "T") is None
