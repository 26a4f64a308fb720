"""The embedding bank and its cache: one vector per phrase, computed once per tower, checked on load."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.knowledge.vocabulary import load_vocabulary
from nnunetv2_malenia.text import embedding_bank as bank_module
from nnunetv2_malenia.text.embedding_bank import EmbeddingBank, EmbeddingCache, embed_vocabulary
from nnunetv2_malenia.text.files import default_cache_dir
from nnunetv2_malenia.text.tower import load_text_tower


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Keep the default cache folder (weights hashes, embeddings) out of the user's home."""
    monkeypatch.setenv("MALENIA_CACHE", str(tmp_path_factory.mktemp("malenia_cache")))


@pytest.fixture(scope="module")
def vocabulary():
    return load_vocabulary()


@pytest.fixture
def build_counter(monkeypatch):
    """Counts how often the embedding code builds a tower."""
    builds = []

    def counting_load(*args, **kwargs):
        builds.append(args)
        return load_text_tower(*args, **kwargs)

    monkeypatch.setattr(bank_module, "load_text_tower", counting_load)
    return builds


def test_second_run_is_a_cache_hit_without_building_the_tower(tmp_path, vocabulary, build_counter):
    first = embed_vocabulary(vocabulary, "tiny-random", cache_dir=tmp_path, progress=False)
    n = len(vocabulary.phrases)
    assert first.embeddings.shape == (n, 32) and first.n_computed == n and len(build_counter) == 1
    assert first.phrases == vocabulary.phrases
    assert torch.allclose(first.embeddings.norm(dim=-1), torch.ones(n), atol=1e-5)

    second = embed_vocabulary(vocabulary, "tiny-random", cache_dir=tmp_path, progress=False)
    assert len(build_counter) == 1, "the tower was built again on a cache hit"
    assert second.n_computed == 0 and second.cache_hit
    assert torch.equal(second.embeddings, first.embeddings)
    assert second.tower == first.tower


def test_only_new_phrases_are_computed(tmp_path, vocabulary, build_counter):
    embed_vocabulary(vocabulary, "tiny-random", cache_dir=tmp_path, progress=False)
    shape = vocabulary.type("shape")
    edited = dataclasses.replace(vocabulary, types=tuple(
        dataclasses.replace(t, values=t.values + ("spherical",)) if t is shape else t for t in vocabulary.types))
    bank = embed_vocabulary(edited, "tiny-random", cache_dir=tmp_path, progress=False)
    assert bank.n_computed == 1 and len(build_counter) == 2
    alone = load_text_tower("tiny-random").encode(["spherical"])[0]
    assert torch.allclose(bank.embeddings[bank.phrases.index("spherical")], alone, atol=1e-6)


def test_cache_is_keyed_by_tower_identity(tmp_path, vocabulary, build_counter):
    tiny = embed_vocabulary(vocabulary, "tiny-random", cache_dir=tmp_path, progress=False)
    state = {k: v * 2 for k, v in load_text_tower("tiny-random").module.state_dict().items()}
    torch.save(state, tmp_path / "other.pt")
    other = embed_vocabulary(vocabulary, f"tiny-random:{tmp_path / 'other.pt'}", cache_dir=tmp_path, progress=False)
    assert other.n_computed == len(vocabulary.phrases) and other.tower != tiny.tower
    assert len(list(tmp_path.glob("tiny-random-*.pt"))) == 2


def test_damaged_cache_is_recomputed(tmp_path, vocabulary):
    bank = embed_vocabulary(vocabulary, "tiny-random", cache_dir=tmp_path, progress=False)
    EmbeddingCache(tmp_path, bank.tower).path.write_bytes(b"garbage")
    again = embed_vocabulary(vocabulary, "tiny-random", cache_dir=tmp_path, progress=False)
    assert again.n_computed == len(vocabulary.phrases)
    assert torch.allclose(again.embeddings, bank.embeddings, atol=1e-6)


def test_save_load_round_trip_is_atomic(tmp_path, vocabulary):
    bank = embed_vocabulary(vocabulary, "tiny-random", cache_dir=tmp_path / "cache", progress=False)
    path = bank.save(tmp_path / "out" / "bank.pt")
    assert sorted(p.name for p in path.parent.iterdir()) == ["bank.pt"]  # no temp file left behind
    loaded = EmbeddingBank.load(path, tower="tiny-random", vocabulary=vocabulary)
    assert loaded == bank and torch.equal(loaded.embeddings, bank.embeddings)
    assert loaded.vocabulary_fingerprint == vocabulary.fingerprint and loaded.tower_spec == "tiny-random"
    assert loaded.vocabulary_ref == "vocabulary"  # the shipped table's name, not a site-packages path
    assert EmbeddingBank.from_dict(bank.to_dict()) == bank


def test_bank_of_another_tower_is_a_clear_error(tmp_path, vocabulary):
    bank = embed_vocabulary(vocabulary, "tiny-random", cache_dir=tmp_path, progress=False)
    path = bank.save(tmp_path / "bank.pt")
    with pytest.raises(MaleniaError) as error:
        EmbeddingBank.load(path, tower="default", cache_dir=tmp_path)
    message = str(error.value)
    assert "bank.pt was embedded with text tower tiny-random (weights sha256" in message
    assert "but tower all-MiniLM-L6-v2 (weights sha256" in message and "384-d) is expected" in message
    assert f"re-run `malenia embed --tower default --out {path}`" in message  # shipped vocabulary: the default
    assert "\n" not in message


def test_bank_checked_against_an_identity_suggests_a_spec(tmp_path, vocabulary):
    bank = embed_vocabulary(vocabulary, "tiny-random", cache_dir=tmp_path, progress=False)
    other = {"name": "ViT-B-16", "weights_sha256": "0" * 64, "embed_dim": 512}
    with pytest.raises(MaleniaError, match=r"re-run `malenia embed --tower ViT-B-16:/path/to/weights\.safetensors"):
        bank.check_tower(other, "model folder bank")


def test_bank_of_another_vocabulary_is_a_clear_error(tmp_path, vocabulary):
    bank = embed_vocabulary(vocabulary, "tiny-random", cache_dir=tmp_path, progress=False)
    edited = dataclasses.replace(vocabulary, name="edited", types=vocabulary.types[::-1])
    with pytest.raises(MaleniaError, match=r"was embedded for vocabulary 'malenia-ct' \(fingerprint \w+\), but "
                                           r"vocabulary 'edited' \(fingerprint \w+\) is in use; re-run"):
        bank.check_vocabulary(edited, "bank.pt")


def test_missing_or_foreign_bank_file(tmp_path):
    with pytest.raises(MaleniaError, match=r"embedding bank not found: .*absent\.pt; write it with `malenia embed"):
        EmbeddingBank.load(tmp_path / "absent.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(MaleniaError, match=r"foreign\.pt: not a Malenia text embedding bank"):
        EmbeddingBank.load(tmp_path / "foreign.pt")


def test_default_cache_dir_follows_malenia_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MALENIA_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "text_embeddings"
    monkeypatch.delenv("MALENIA_CACHE")
    assert default_cache_dir().parts[-3:] == (".cache", "nnunetv2_malenia", "text_embeddings")
