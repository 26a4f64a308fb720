"""DSC and NSD evaluation of label maps (`malenia evaluate`).

Import-light: the functions import torch / MONAI / SimpleITK only when called.
"""

from nnunetv2_malenia.evaluation.evaluate_folder import (
    EvaluationResult, evaluate_folders, load_label_file, load_pair, markdown_table, resolve_labels, summarize,
    write_outputs,
)
from nnunetv2_malenia.evaluation.metrics import (
    BOTH_EMPTY, DEFAULT_TOLERANCE_MM, GT_EMPTY, PRED_EMPTY, dsc, empty_kind, evaluate_case, nsd,
)

__all__ = [
    "BOTH_EMPTY", "DEFAULT_TOLERANCE_MM", "GT_EMPTY", "PRED_EMPTY", "EvaluationResult", "dsc", "empty_kind",
    "evaluate_case", "evaluate_folders", "load_label_file", "load_pair", "markdown_table", "nsd", "resolve_labels",
    "summarize", "write_outputs",
]
