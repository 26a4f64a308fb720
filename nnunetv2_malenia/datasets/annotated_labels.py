"""Which labels each case's source dataset annotates: `annotated_labels.json` beside dataset.json.

A dataset merged from partially labelled ones (`malenia merge-datasets`) has, say, a liver label
that only the liver dataset's cases annotate: in a lung case an unlabelled liver is background in
the label map, though it is no background at all. This file says, per case, which labels its
source annotates, so the loss (loss/marginal.py) and the evaluation leave the others alone.

Layout (schema_version 1):
    {"schema_version": 1,
     "sources": {"Dataset003_Liver": {"labels": [1, 2], "num_cases": 131}, ...},
     "cases": {CASE_ID: [label values its source annotates, background (0) not listed]}}
A case the file does not list annotates every label (a fully labelled case, e.g. a test case).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from nnunetv2_malenia._atomic import read_json_file, write_json_atomic
from nnunetv2_malenia.errors import MaleniaError

ANNOTATED_LABELS_FILENAME = "annotated_labels.json"


@dataclass
class AnnotatedLabels:
    """Per case, the foreground labels its source annotates; `sources` is provenance only."""

    cases: dict[str, frozenset[int]]
    sources: dict[str, dict] = field(default_factory=dict)
    path: str = ""

    def annotates(self, case: str, label: int) -> bool:
        """Background and every label of an unlisted case count as annotated."""
        labels = self.cases.get(case)
        return label == 0 or labels is None or int(label) in labels

    def mask(self, cases: Sequence[str], num_labels: int) -> np.ndarray:
        """(len(cases), num_labels) bool: True where the case's source annotates the label (channel)."""
        out = np.ones((len(cases), num_labels), dtype=bool)
        for i, case in enumerate(cases):
            labels = self.cases.get(str(case))
            if labels is not None:
                out[i, 1:] = False
                out[i, [v for v in labels if v < num_labels]] = True
        return out

    def partial_cases(self) -> list[str]:
        """Cases whose source leaves at least one label of the dataset unannotated."""
        every = set().union(*self.cases.values()) if self.cases else set()
        return sorted(c for c, labels in self.cases.items() if labels != every)

    def to_dict(self) -> dict:
        return {"schema_version": 1, "sources": self.sources,
                "cases": {case: sorted(labels) for case, labels in sorted(self.cases.items())}}

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict())


def load_annotated_labels(path: str | Path, labels: Iterable[int] | None = None) -> AnnotatedLabels:
    """Read and check an annotated_labels.json; `labels`: the dataset's label values, to check against.

    Errors name the file, the case and the value, and say what to do.
    """
    path = Path(path)
    data = read_json_file(path, "no such file", "re-run malenia merge-datasets")
    if not isinstance(data, dict) or data.get("schema_version") != 1 or not isinstance(data.get("cases"), dict):
        raise MaleniaError(f"{path}: expected {{'schema_version': 1, 'cases': {{CASE: [labels]}}}}; "
                           "re-run malenia merge-datasets")
    known = None if labels is None else {int(v) for v in labels}
    cases: dict[str, frozenset[int]] = {}
    for case, values in data["cases"].items():
        if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                   for v in values):
            raise MaleniaError(f"{path}: case {case!r}: expected a list of positive label values, found {values!r}")
        if known is not None and not set(values) <= known:
            bad = sorted(set(values) - known)
            raise MaleniaError(f"{path}: case {case!r} lists label {bad[0]}, which dataset.json 'labels' does not "
                               f"name; fix the file or re-run malenia merge-datasets")
        cases[str(case)] = frozenset(values)
    return AnnotatedLabels(cases, dict(data.get("sources") or {}), str(path))


def find_annotated_labels(dataset_folder: str | Path | None,
                          labels: Iterable[int] | None = None) -> AnnotatedLabels | None:
    """The dataset folder's annotated_labels.json, or None when it has none (every case fully labelled)."""
    if dataset_folder is None:
        return None
    path = Path(dataset_folder) / ANNOTATED_LABELS_FILENAME
    return load_annotated_labels(path, labels) if path.is_file() else None
