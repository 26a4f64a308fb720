"""The shared-values CPU tier (`malenia synth --preset cpu_shared`): the varied tier with every value
an unseen row uses shown by seen rows of at least two organs."""

from __future__ import annotations

from nnunetv2_malenia.synthetic.anatomy import LOCATION_ORGAN, ORGAN_LABELS
from nnunetv2_malenia.synthetic.benchmark import load_benchmark, new_unseen_values, split_problems
from nnunetv2_malenia.synthetic.presets import available_presets, load_preset

VARIED, SHARED = load_benchmark(preset="cpu_varied"), load_benchmark(preset="cpu_shared")
ORGAN_NAME = {label: name for name, label in ORGAN_LABELS.items()}
# types whose values are where a lesion is or when it was scanned, not what it looks like
NOT_APPEARANCE = ("location", "enhancement_status", "relationship")


def organ_kinds(benchmark, disease: str) -> set[str]:
    """'liver', 'kidney', 'spleen', 'lung': left and right are one organ kind."""
    locations = benchmark.table.row(disease).attributes["location"]
    return {ORGAN_NAME[LOCATION_ORGAN[loc]].replace("left ", "").replace("right ", "") for loc in locations}


def organs_showing(benchmark, type_key: str, value: str) -> set[str]:
    return {organ for d in benchmark.seen if value in benchmark.table.row(d).attributes[type_key]
            for organ in organ_kinds(benchmark, d)}


def test_shared_tier_is_the_varied_tier_but_for_its_table():
    assert "cpu_shared" in available_presets()
    varied, shared = load_preset("cpu_varied").as_dict(), load_preset("cpu_shared").as_dict()
    assert {k for k in varied if varied[k] != shared[k]} == {"name", "description", "table"}
    assert SHARED.seen == VARIED.seen and SHARED.unseen == VARIED.unseen
    for disease in SHARED.unseen:   # the diseases to transfer to are the varied tier's, value for value
        assert SHARED.table.row(disease).attributes == VARIED.table.row(disease).attributes


def test_every_appearance_value_of_an_unseen_row_is_seen_in_two_organs():
    for disease in SHARED.unseen:
        for type_key, weights in SHARED.table.row(disease).attributes.items():
            if type_key in NOT_APPEARANCE:
                continue
            for value in weights:
                assert len(organs_showing(SHARED, type_key, value)) >= 2, (disease, type_key, value)


def test_the_varied_tier_ties_two_such_values_to_one_organ():
    """What the shared tier changes: on the varied tier these specific features come with one organ."""
    assert organs_showing(VARIED, "specific_features", "presence of decreased density areas") == {"liver"}
    assert organs_showing(VARIED, "specific_features", "no specific features") == {"spleen"}
    assert organs_showing(SHARED, "specific_features", "presence of decreased density areas") == {"liver", "lung"}
    assert organs_showing(SHARED, "specific_features", "no specific features") == {"spleen", "kidney"}


def test_shared_split_keeps_the_zero_shot_property():
    assert split_problems(SHARED) == []
    assert new_unseen_values(SHARED) == set()
