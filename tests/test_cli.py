import os

import pytest

from conftest import run_malenia
from nnunetv2_malenia.cli import COMMAND_MODULES

SUBCOMMANDS = [name.replace("_", "-") for name in COMMAND_MODULES]


def test_top_level_help_lists_every_subcommand():
    result = run_malenia("--help")
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name):
    result = run_malenia(name, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: malenia {name}" in result.stdout


def test_env_reports_paths_and_trainer_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    env["nnUNet_raw"] = str(tmp_path)
    result = run_malenia("env", env=env)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines() if line.startswith("nnUNet_"))
    assert lines["nnUNet_raw"].strip() == str(tmp_path)
    assert lines["nnUNet_results"].startswith("NOT SET")
    assert "contains the trainer folder" in lines["nnUNet_extTrainer"]
    assert "all-MiniLM-L6-v2" in result.stdout


@pytest.mark.parametrize("args, message", [
    (("--min-lesion-ml", "-1"), "--min-lesion-ml must be a finite number >= 0, got -1.0"),
    (("--min-lesion-ml", "0.5", "--voxelwise"), "--min-lesion-ml works on the lesion vote, which --voxelwise turns off"),
])
def test_benchmark_rejects_a_bad_minimum_lesion_volume(args, message):
    result = run_malenia("benchmark", "-d", "905", "-tr", "nnUNetTrainer", *args)
    assert result.returncode != 0
    assert message in result.stderr
