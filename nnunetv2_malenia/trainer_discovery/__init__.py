"""The folder nnU-Net's `nnUNet_extTrainer` points at.

nnU-Net imports every module of this folder under its bare name when it looks for a trainer it
does not ship. So the folder holds exactly one uniquely named module that re-exports the trainer
classes from their real home: the classes keep their `nnunetv2_malenia.training...` module, and
checkpoints pickle and load under that one name. This `__init__` is never imported by that
lookup (nnU-Net lists the folder's modules, it does not import it as a package).
"""

from pathlib import Path

TRAINER_FOLDER = str(Path(__file__).resolve().parent)
