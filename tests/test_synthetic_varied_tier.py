"""The varied CPU tier (`malenia synth --preset cpu_varied`): the CPU tier with seen rows that vary."""

from __future__ import annotations

from collections import Counter

import numpy as np

from nnunetv2_malenia.synthetic.benchmark import (
    MIN_DIFFERING_TYPES,
    differing_types,
    load_benchmark,
    new_unseen_values,
    split_problems,
)
from nnunetv2_malenia.synthetic.hu import PHASES
from nnunetv2_malenia.synthetic.presets import available_presets, load_preset
from nnunetv2_malenia.synthetic.sampling import sample_attributes

CPU, VARIED = load_benchmark(preset="cpu"), load_benchmark(preset="cpu_varied")


def test_varied_tier_is_the_cpu_tier_but_for_its_table():
    assert "cpu_varied" in available_presets()
    cpu, varied = load_preset("cpu").as_dict(), load_preset("cpu_varied").as_dict()
    differs = {k for k in cpu if cpu[k] != varied[k]}
    assert differs == {"name", "description", "table"}
    assert VARIED.seen == CPU.seen and VARIED.unseen == CPU.unseen
    for disease in VARIED.unseen:   # the diseases to transfer to are the CPU tier's, value for value
        assert VARIED.table.row(disease).attributes == CPU.table.row(disease).attributes


def test_every_seen_row_shows_a_second_value_in_two_types_at_three_to_one():
    for disease in VARIED.seen:
        varied = {t: w for t, w in VARIED.table.row(disease).attributes.items()
                  if len(w) == 2 and t not in ("location", "enhancement_status")}
        assert len(varied) >= 2, disease
        for weights in varied.values():
            assert sorted(weights.values()) == [0.25, 0.75], (disease, weights)


def test_varied_split_keeps_the_zero_shot_property():
    assert split_problems(VARIED) == []
    for u in VARIED.unseen:
        for s in VARIED.seen:
            assert len(differing_types(VARIED.table.row(u), VARIED.table.row(s))) >= MIN_DIFFERING_TYPES
    assert new_unseen_values(VARIED) == set()


def test_within_an_organ_no_varied_type_comes_with_a_single_value():
    """The point of the tier: on the CPU tier every seen liver or spleen lesion is hypodense or
    homogeneous, so the organ alone predicts the value; here lesions of one organ show two."""
    rng = np.random.default_rng(0)
    drawn: dict[tuple[str, str], Counter] = {}
    for disease in ("liver cyst", "liver tumor"):
        for _ in range(400):
            values = sample_attributes(VARIED.table.row(disease), PHASES[0], rng)
            for t in ("shape", "density", "density_variation", "specific_features"):
                v = values[t][0] if isinstance(values[t], list) else values[t]
                drawn.setdefault(("liver", t), Counter())[v] += 1
    assert set(drawn[("liver", "density")]) == {"hypodense lesion", "hyperdense lesion"}
    assert set(drawn[("liver", "density_variation")]) == {"homogeneous", "heterogeneous"}
    assert "calcified foci" in drawn[("liver", "specific_features")]
    # liver tumour is hyperdense in about 1 draw in 4 (weight 1 of 4), so ~100 of 800 liver lesions
    assert 60 <= drawn[("liver", "density")]["hyperdense lesion"] <= 140


def test_a_preset_file_inherits_the_fields_it_does_not_list(tmp_path):
    import json

    import pytest

    from nnunetv2_malenia.errors import MaleniaError

    (tmp_path / "noisy.json").write_text(json.dumps({"name": "noisy", "inherits_from": "cpu_varied",
                                                     "noise_std_hu": 40.0}))
    noisy, varied = load_preset(tmp_path / "noisy.json").as_dict(), load_preset("cpu_varied").as_dict()
    assert noisy["noise_std_hu"] == 40.0 and varied["noise_std_hu"] != 40.0
    assert {k for k in varied if varied[k] != noisy[k]} == {"name", "noise_std_hu"}   # the rest: cpu_varied's
    (tmp_path / "child.json").write_text(json.dumps({"name": "child", "inherits_from": "noisy.json"}))
    assert load_preset(tmp_path / "child.json").noise_std_hu == 40.0   # a path relative to the file
    (tmp_path / "orphan.json").write_text(json.dumps({"name": "orphan", "inherits_from": "cpu_tiny"}))
    with pytest.raises(MaleniaError, match=r"orphan.json: inherits_from 'cpu_tiny' is not a preset; give one of"):
        load_preset(tmp_path / "orphan.json")
    (tmp_path / "a.json").write_text(json.dumps({"inherits_from": "b.json"}))
    (tmp_path / "b.json").write_text(json.dumps({"inherits_from": "a.json"}))
    with pytest.raises(MaleniaError, match="inherits_from makes a cycle"):
        load_preset(tmp_path / "a.json")
