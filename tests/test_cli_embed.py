"""`malenia embed`: writes the bank, reuses the cache, and fails in one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nnunetv2_malenia.cli import main
from nnunetv2_malenia.knowledge.vocabulary import load_vocabulary
from nnunetv2_malenia.text import embedding_bank as bank_module
from nnunetv2_malenia.text.embedding_bank import EmbeddingBank


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Keep the default cache folder (weights hashes, embeddings) out of the user's home."""
    monkeypatch.setenv("MALENIA_CACHE", str(tmp_path_factory.mktemp("malenia_cache")))

AXIS_VALUES = {
    "location": ["liver", "kidney"],
    "shape": ["round-like", "irregular"],
    "density": ["hypodense lesion"],
    "density_variation": ["homogeneous"],
    "enhancement_status": ["contrast-enhanced CT"],
    "surface_characteristics": ["well-defined margin"],
    "relationship": ["no close relationship with adjacent organs"],
    "specific_features": ["no specific features"],
}


def small_vocabulary(folder: Path) -> Path:
    """A valid 8-type vocabulary holding the phrases of the acceptance check."""
    lines = ["kind: attribute_vocabulary", "schema_version: 1", "name: cli-test", "attribute_types:"]
    for key, values in AXIS_VALUES.items():
        lines += [f"  - key: {key}", f"    name: {key}", "    values:"] + [f"      - {v}" for v in values]
    path = folder / "vocabulary.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def malenia(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def forbid_building(monkeypatch):
    monkeypatch.setattr(bank_module, "load_text_tower",
                        lambda *a, **k: pytest.fail("the text tower was built on a cache hit"))


def test_default_tower_bank_then_cache_hit(tmp_path, capsys, monkeypatch):
    vocabulary = small_vocabulary(tmp_path)
    bank_file = tmp_path / "bank.pt"
    args = ("embed", "--vocabulary", str(vocabulary), "--cache-dir", str(tmp_path / "cache"),
            "--out", str(bank_file), "--no-progress")
    code, out, err = malenia(capsys, *args)
    assert code == 0, err
    assert f"bank: {bank_file}" in out and "shape: 10 x 384" in out
    assert "tower: all-MiniLM-L6-v2 (384-d, weights sha256" in out and "computed 10 of 10 phrases" in out

    bank = EmbeddingBank.load(bank_file, tower="default", vocabulary=load_vocabulary(vocabulary))
    e = {p: bank.embeddings[i] for i, p in enumerate(bank.phrases)}
    assert bank.embeddings.shape == (10, 384)
    assert float(e["liver"] @ e["kidney"]) > float(e["liver"] @ e["round-like"])

    forbid_building(monkeypatch)
    bank_file.unlink()
    code, out, err = malenia(capsys, *args)
    assert code == 0, err
    assert "cache: cache hit (0 of 10 phrases computed)" in out
    assert torch.equal(EmbeddingBank.load(bank_file).embeddings, bank.embeddings)


def test_default_out_goes_to_the_cache_folder(tmp_path, capsys):
    code, out, err = malenia(capsys, "embed", "--tower", "tiny-random", "--cache-dir", str(tmp_path), "--no-progress")
    assert code == 0, err
    written = list((tmp_path / "banks").glob("malenia-ct__tiny-random-*.pt"))
    assert len(written) == 1 and f"bank: {written[0]}" in out and "shape: 46 x 32" in out


def test_missing_weights_file_is_one_clear_line(tmp_path, capsys):
    missing = tmp_path / "ViT-B-16.safetensors"
    code, out, err = malenia(capsys, "embed", "--tower", f"ViT-B-16:{missing}", "--cache-dir", str(tmp_path))
    assert code == 2
    assert err.strip() == (f"malenia embed: error: text tower weights not found: {missing} (from --tower "
                           f"ViT-B-16:{missing}); supply an existing .safetensors/.bin/.pt/.pth file with ViT-B-16 "
                           "weights, see docs/text_tower.md")


def test_check_reports_a_bank_tower_mismatch(tmp_path, capsys, monkeypatch):
    bank_file = tmp_path / "bank.pt"
    cache = ("--cache-dir", str(tmp_path / "cache"))
    assert malenia(capsys, "embed", "--tower", "tiny-random", "--out", str(bank_file), "--no-progress", *cache)[0] == 0

    forbid_building(monkeypatch)
    code, out, err = malenia(capsys, "embed", "--check", "--tower", "tiny-random", "--out", str(bank_file), *cache)
    assert code == 0 and f"{bank_file}: ok, 46 x 32" in out

    code, out, err = malenia(capsys, "embed", "--check", "--tower", "default", "--out", str(bank_file), *cache)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{bank_file} was embedded with text tower tiny-random" in err
    assert "but tower all-MiniLM-L6-v2" in err
    assert f"re-run `malenia embed --tower default --out {bank_file}`" in err


def test_help_lists_the_tower_forms(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["embed", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for text in ("--tower SPEC", "NAME:/path/weights.safetensors", "local-dir:/folder", "hf-hub:ORG/REPO",
                 "--cache-dir DIR", "--check"):
        assert text in out
