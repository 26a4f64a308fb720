"""Stock nnU-Net finds nnUNetTrainerMalenia with no variable exported by hand."""

import os
import subprocess
import sys

RESOLVE = """
import pickle
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
trainer = recursive_find_trainer_class_by_name("nnUNetTrainerMalenia")
assert pickle.loads(pickle.dumps(trainer)) is trainer
print("RESOLVED", trainer.__module__, trainer.__qualname__)
"""


def _fresh_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "nnUNet_extTrainer"}
    env.update(extra)
    return env


def test_fresh_process_resolves_and_pickles_the_trainer(tmp_path):
    result = subprocess.run([sys.executable, "-c", RESOLVE], capture_output=True, text=True, cwd=tmp_path,
                            env=_fresh_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "RESOLVED nnunetv2_malenia.training.nnUNetTrainerMalenia nnUNetTrainerMalenia" in result.stdout


def test_startup_hook_appends_to_a_users_folders_and_stays_light(tmp_path):
    probe = ("import os, sys; print(os.environ['nnUNet_extTrainer']); "
             "print('torch' in sys.modules, 'nnunetv2' in sys.modules, 'nnunetv2_malenia' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                            env=_fresh_env(nnUNet_extTrainer="/my/trainers"), timeout=60)
    assert result.returncode == 0, result.stderr
    folders, imported = result.stdout.strip().splitlines()
    first, ours = folders.split(os.pathsep)
    assert first == "/my/trainers"
    assert ours.endswith(os.path.join("nnunetv2_malenia", "trainer_discovery"))
    assert imported == "False False False"
