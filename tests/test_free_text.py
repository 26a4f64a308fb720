"""Free-text descriptions -> knowledge-table rows (`--describe`, `malenia tables from-text`)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from conftest import run_malenia
from nnunetv2_malenia.errors import MaleniaError, TableError
from nnunetv2_malenia.knowledge import load_knowledge_table, load_vocabulary
from nnunetv2_malenia.knowledge.free_text import parse_description, split_describe_option, tower_embedder
from nnunetv2_malenia.knowledge.knowledge_table import knowledge_table_from_dict

EMPTY = ()


@pytest.fixture(scope="module")
def vocabulary():
    return load_vocabulary()


@pytest.fixture(scope="module")
def embed():
    return tower_embedder("default")


def no_similarity(texts):
    raise AssertionError(f"the tower was asked about {texts[:3]}: exact mentions need no similarity")


def test_exact_phrases_parse_to_their_values_without_the_tower(vocabulary):
    text = ("Pancreatic-Body, Round-like, hypodense lesions, homogeneous, contrast enhanced CT, well defined margin; "
            "no close relationship with adjacent organs, with thin cystic walls and calcified foci")
    parsed = parse_description("cystic pancreas lesion", text, vocabulary, no_similarity)
    assert parsed.values == {
        "location": ("pancreatic body",), "shape": ("round-like",), "density": ("hypodense lesion",),
        "density_variation": ("homogeneous",), "enhancement_status": ("contrast-enhanced CT",),
        "surface_characteristics": ("well-defined margin",),
        "relationship": ("no close relationship with adjacent organs",),  # the longer phrase, not "close ..."
        "specific_features": ("calcified foci", "thin cystic wall")}
    row = parsed.row()
    assert row.attributes["specific_features"] == {"calcified foci": 0.5, "thin cystic wall": 0.5}
    assert row.description == text


def test_the_issue_example_parses_with_shape_by_similarity(vocabulary, embed):
    parsed = parse_description("cystic pancreas lesion", "round, hypodense, homogeneous lesion with a thin cystic wall "
                               "in the pancreatic body", vocabulary, embed)
    assert parsed.values["shape"] == ("round-like",)  # "round": cosine 0.80 with "round-like"
    assert parsed.values["location"] == ("pancreatic body",)
    assert parsed.values["specific_features"] == ("thin cystic wall",)
    assert "shape" in "\n".join(parsed.table_lines()) and '"round" (cos 0.80)' in "\n".join(parsed.table_lines())


def test_negated_exact_mention_is_not_taken(vocabulary, embed):
    parsed = parse_description("x", "round lesion in the spleen without calcified foci", vocabulary, embed)
    assert parsed.values["specific_features"] != ("calcified foci",)


# paraphrases that benchmarks/bench_free_text.py measured to parse right (docs/free_text.md)
def test_paraphrase_of_a_liver_cyst_parses_as_measured(vocabulary, embed):
    text = ("a small round fluid-like spot in the right lobe of the liver, darker than the surrounding liver, uniform "
            "inside, sharply outlined, with a paper-thin wall, well away from neighbouring organs")
    values = parse_description("liver cyst", text, vocabulary, embed).values
    assert values["location"] == ("right hepatic lobe",)
    assert values["shape"] == ("round-like",)
    assert values["relationship"] == ("no close relationship with adjacent organs",)  # "away": a negated clause
    assert values["specific_features"] == ("thin cystic wall",)
    truth = load_knowledge_table("synthetic_cpu_knowledge_table").row("liver cyst").attributes
    assert all(set(v) <= set(truth[k]) for k, v in values.items())  # every value taken is the true row's


def test_paraphrase_with_a_negated_feature_clause(vocabulary, embed):
    text = ("a lumpy dark splenic lesion of even texture whose edges merge with the surrounding tissue, "
            "without any special features")
    values = parse_description("splenic lymphoma", text, vocabulary, embed).values
    assert values["location"] == ("spleen",)
    assert values["specific_features"] == ("no specific features",)


def test_a_type_the_text_does_not_speak_of_is_left_empty(vocabulary, embed):
    parsed = parse_description("x", "a round lesion in the spleen", vocabulary, embed)
    assert parsed.values["location"] == ("spleen",) and parsed.values["shape"] == ("round-like",)
    for key in ("density", "density_variation", "enhancement_status", "surface_characteristics", "relationship",
                "specific_features"):
        assert parsed.values[key] == EMPTY, key
    assert "not mentioned: scored as chance" in "\n".join(parsed.table_lines())
    assert parsed.row().unspecified_types() == ("density", "density_variation", "enhancement_status",
                                                "surface_characteristics", "relationship", "specific_features")


def test_text_with_nothing_of_the_vocabulary_is_an_error(vocabulary, embed):
    with pytest.raises(MaleniaError, match="description 'x': no attribute of the vocabulary could be read"):
        parse_description("x", "qwerty", vocabulary, embed)


def test_empty_type_in_a_table_is_scored_as_chance(vocabulary):
    import torch

    from nnunetv2_malenia.network.disease_head import DiseaseHead

    base = {"location": "spleen", "shape": "round-like", "density": "hypodense lesion", "density_variation": "homogeneous",
            "enhancement_status": "contrast-enhanced CT", "surface_characteristics": "well-defined margin",
            "relationship": "close relationship with adjacent organs", "specific_features": "thin cystic wall"}
    rows = [{"name": "full", "source": "t", "attributes": base},
            {"name": "open", "source": "t", "attributes": {**base, "density": []}}]
    table = knowledge_table_from_dict({"name": "t", "diseases": rows}, vocabulary)
    assert table.row("open").attributes["density"] == {} and table.row("open").unspecified_types() == ("density",)
    matrix = table.weight_matrix()
    density = [i for i, t in enumerate(vocabulary.value_type) if vocabulary.types[t].key == "density"]
    assert matrix[1, density].sum() == 0 and matrix[0, density].sum() == pytest.approx(1.0)
    head = DiseaseHead(len(vocabulary.phrases), 2)
    head.set_knowledge_table(torch.from_numpy(matrix), [1, 2], num_labels=3, head_label_map=[0, -1])
    value_type = torch.tensor(vocabulary.value_type)

    def p_given_density(value):
        probs = torch.from_numpy(matrix[0].copy())
        probs[density] = 0.0
        probs[vocabulary.value_index("density", value)] = 1.0
        return head.disease_given_token(probs.view(1, 1, 1, -1).expand(1, 1, len(vocabulary.types), -1).clone()
                                        * torch.nn.functional.one_hot(value_type, len(vocabulary.types)).T,
                                        value_type)[0, 0]

    # a token whose density is not the full row's: the full row pays for it, the open row does not
    assert p_given_density("hyperdense lesion")[1] > 0.99
    # a token whose density is the full row's: the open row counts the type as chance (1 / values),
    # so saying less does not beat saying it right
    chance = 1.0 / len(density)
    assert p_given_density("hypodense lesion").tolist() == pytest.approx([1 / (1 + chance), chance / (1 + chance)],
                                                                         rel=1e-4)
    with pytest.raises(MaleniaError, match="'open' leaves density unspecified"):
        table.row("open").most_likely("density")


def test_a_row_with_every_type_empty_is_refused(vocabulary):
    row = {"name": "nothing", "source": "t", "attributes": {k: [] for k in vocabulary.type_keys}}
    with pytest.raises(TableError, match="row 'nothing': field 'attributes': every attribute type is \\[\\]"):
        knowledge_table_from_dict({"name": "t", "diseases": [row]}, vocabulary)


def test_describe_option_needs_name_and_text():
    assert split_describe_option(" my lesion = round lesion ") == ("my lesion", "round lesion")
    with pytest.raises(MaleniaError) as info:
        split_describe_option("round lesion in the spleen")
    assert str(info.value).startswith("--describe 'round lesion in the spleen': expected NAME=TEXT, e.g. --describe")
    with pytest.raises(MaleniaError, match="the NAME before '=' is empty"):
        split_describe_option("=round")
    with pytest.raises(MaleniaError, match="the TEXT after '=' is empty"):
        split_describe_option("x=  ")


def test_predict_describe_without_equals_is_a_one_line_error(tmp_path):
    result = run_malenia("predict", "-i", str(tmp_path), "-o", str(tmp_path / "out"), "-m", str(tmp_path),
                         "--describe", "round lesion")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "malenia predict: error: --describe 'round lesion': expected NAME=TEXT, e.g. --describe \"cystic pancreas "
        "lesion=round, hypodense lesion with a thin cystic wall in the pancreatic body\""]
    only = run_malenia("predict", "-i", str(tmp_path), "-o", str(tmp_path / "out"), "-m", str(tmp_path), "--describe-only")
    assert only.stderr.strip().splitlines() == [
        "malenia predict: error: --describe-only needs at least one --describe \"NAME=TEXT\""]


def _model():
    """What a model trained on the CPU tier's seen rows knows (no network needed)."""
    from nnunetv2_malenia.inference.zero_shot_predictor import ModelKnowledge
    from nnunetv2_malenia.text import tower_identity

    table = load_knowledge_table("synthetic_cpu_knowledge_table")
    seen = table.disease_names[:6]
    labels = {"background": 0, "liver": 1, "spleen": 2, "kidney": 3, "lung": 4} | {d: 5 + i for i, d in enumerate(seen)}
    model = ModelKnowledge(table.vocabulary, table, {5 + i: d for i, d in enumerate(seen)}, tower_identity("default"),
                           "default")
    return model, labels, table


@pytest.mark.parametrize("name, whose", [
    ("liver hemangioma", "a row of the model's table 'malenia-synthetic-cpu'"),
    ("liver", "a label of the model (dataset.json)"),
    ("unknown lesion", "the open-set label"),
])
def test_describe_name_clash_is_a_clear_error(name, whose):
    from nnunetv2_malenia.inference.descriptions import describe_table

    model, labels, table = _model()
    with pytest.raises(MaleniaError) as info:
        describe_table(model, labels, table, [(name, "round lesion")], embed=no_similarity)
    assert str(info.value) == (f"--describe {name!r}: the name is already {whose}; choose another NAME "
                               "(it becomes the output label name)")
    with pytest.raises(MaleniaError, match="--describe 'a' is given twice"):
        describe_table(model, labels, table, [("a", "round lesion"), ("a", "irregular")], embed=no_similarity)


def test_description_rows_are_added_to_the_table_and_take_the_next_labels():
    from nnunetv2_malenia.inference.descriptions import describe_table
    from nnunetv2_malenia.inference.zero_shot_predictor import output_labels

    model, labels, table = _model()
    descriptions = [("cystic spleen lesion", "round-like hypodense lesion in the spleen, thin cystic wall"),
                    ("kidney thing", "irregular, mixed density, right kidney")]
    described, parsed = describe_table(model, labels, table, descriptions, embed=no_similarity)
    assert described.disease_names == table.disease_names + ("cystic spleen lesion", "kidney thing")
    assert described.row("kidney thing").attributes["density"] == {"mixed-density lesion": 1.0}
    assert described.row("kidney thing").unspecified_types() == (
        "density_variation", "enhancement_status", "surface_characteristics", "relationship", "specific_features")
    out, label_of_disease, _ = output_labels(labels, model.disease_of_label, described.disease_names)
    assert out["liver cyst"] == 5 and out["cystic spleen lesion"] == 15 and out["kidney thing"] == 16
    assert described.weight_matrix().shape == (12, len(table.vocabulary.phrases))

    alone, _ = describe_table(model, labels, table, descriptions, only=True, embed=no_similarity)
    assert alone.disease_names == ("cystic spleen lesion", "kidney thing")
    out, _, _ = output_labels(labels, model.disease_of_label, alone.disease_names)
    assert out["cystic spleen lesion"] == 11 and out["liver cyst (not in table)"] == 5


def test_describe_refuses_another_tower_than_the_models():
    from nnunetv2_malenia.inference.descriptions import describe_table

    model, labels, table = _model()
    with pytest.raises(MaleniaError, match="--describe needs the model's text tower all-MiniLM-L6-v2 .* but --tower "
                                           "tiny-random is tiny-random"):
        describe_table(model, labels, table, [("x", "round lesion")], tower_spec="tiny-random")


def test_tables_from_text_prints_a_yaml_row_that_loads_back(vocabulary):
    result = run_malenia("tables", "from-text", "round, hypodense, homogeneous lesion with a thin cystic wall in the "
                         "pancreatic body", "--name", "cystic pancreas lesion")
    assert result.returncode == 0, result.stderr
    rows = yaml.safe_load(result.stdout)
    assert len(rows) == 1 and rows[0]["name"] == "cystic pancreas lesion"
    assert rows[0]["attributes"]["enhancement_status"] == []  # unspecified, written as []
    table = knowledge_table_from_dict({"kind": "knowledge_table", "schema_version": 1, "name": "t",
                                       "vocabulary": "vocabulary", "diseases": rows}, vocabulary)
    row = table.row("cystic pancreas lesion")
    assert row.attributes["location"] == {"pancreatic body": 1.0} and row.attributes["shape"] == {"round-like": 1.0}
    assert row.description.startswith("round, hypodense")
    assert "pancreatic body" in result.stderr and "exact" in result.stderr  # how each value was found
    assert np.isclose(table.weight_matrix().sum(), 5.0)  # five specified types, each summing to 1
