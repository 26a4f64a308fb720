"""Knowledge-table rows from annotated cases: the value frequencies of each disease.

This is how the shipped clinical table's rows for the workbook's seven classes were made, and how a
user turns their own annotated dataset into rows (`malenia tables derive`).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from nnunetv2_malenia.knowledge.lesion_attributes import LesionAttributes
from nnunetv2_malenia.knowledge.vocabulary import Vocabulary


def value_frequencies(lesions: LesionAttributes, vocabulary: Vocabulary) -> dict[str, dict[str, Counter]]:
    """disease -> attribute type -> Counter of value phrases over all lesions of that disease."""
    counts: dict[str, dict[str, Counter]] = defaultdict(lambda: {k: Counter() for k in vocabulary.type_keys})
    for labels in lesions.cases.values():
        for record in labels.values():
            for type_key, value in record.attributes.items():
                counts[record.disease][type_key].update(value if isinstance(value, list) else [value])
    return dict(counts)


def derived_rows(lesions: LesionAttributes, vocabulary: Vocabulary, source: str, decimals: int = 3) -> list[dict]:
    """Table rows (as YAML-ready dicts) whose weights are the rounded value frequencies.

    A multi-valued type's frequencies count lesions that show the value, so they need not sum to 1;
    the table loader normalises each type anyway.
    """
    rows = []
    for disease, per_type in value_frequencies(lesions, vocabulary).items():
        n_lesions = max(sum(per_type[vocabulary.type_keys[0]].values()), 1)
        attributes = {}
        for type_key in vocabulary.type_keys:
            counter = per_type[type_key]
            order = vocabulary.type(type_key).values
            attributes[type_key] = {
                phrase: round(counter[phrase] / n_lesions, decimals)
                for phrase in sorted(counter, key=order.index)
                if round(counter[phrase] / n_lesions, decimals) > 0
            }
        rows.append({"name": disease, "source": f"{source}: value frequencies over {n_lesions} lesions",
                     "attributes": attributes})
    return rows
