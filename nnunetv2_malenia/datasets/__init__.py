"""Whole nnU-Net raw datasets: merging partially labelled datasets into one, and the record of
which labels each case's source annotates (`annotated_labels.json`)."""

from nnunetv2_malenia.datasets.annotated_labels import (
    ANNOTATED_LABELS_FILENAME,
    AnnotatedLabels,
    find_annotated_labels,
    load_annotated_labels,
)

__all__ = ["ANNOTATED_LABELS_FILENAME", "AnnotatedLabels", "find_annotated_labels", "load_annotated_labels"]
