"""ViT and CLIP in Flax against transformers: converted Hugging Face directories give the same outputs."""

import json
import sys
import types

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from flax import nnx  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

from mll_jax import converters, nets  # noqa: E402
from mll_jax.converters import hf_clip, hf_vit  # noqa: E402
from mll_jax.data.preprocess import preprocess  # noqa: E402
from mll_jax.hub import checkpoint  # noqa: E402
from mll_jax.nets import clip  # noqa: E402

TOLERANCE = 1e-4
LABELS = ["sandal", "sneaker", "boot", "bag", "shirt"]
SPEC = {"shape": [32, 32, 3], "dtype": "uint8", "mean": 0.5, "std": 0.5}
BOS, EOS, VOCAB, POSITIONS = 998, 999, 1000, 16


def _perturb(net: torch.nn.Module) -> torch.nn.Module:
    """Noise on every weight: random init leaves biases at 0 and norms at 1, which would hide a swapped tensor."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return net


def _max_diff(ours, expected) -> float:
    ours, expected = np.asarray(ours), np.asarray(expected)
    assert ours.shape == expected.shape
    return float(np.abs(ours - expected).max())


def _nchw(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))


def _saved(net: torch.nn.Module, path) -> tuple:
    """(directory, reference): `net` perturbed, in eval mode, written as a Hugging Face model directory."""
    torch.manual_seed(0)
    reference = _perturb(net.eval())
    reference.save_pretrained(path)
    return path, reference


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    config = transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96,
        id2label=dict(enumerate(LABELS)),
    )  # fmt: skip
    return _saved(transformers.ViTForImageClassification(config), tmp_path_factory.mktemp("vit"))


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    config = transformers.CLIPConfig(
        vision_config=dict(
            image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=96,
        ),
        text_config=dict(
            vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
            max_position_embeddings=POSITIONS, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=0,
        ),
        projection_dim=32,
    )  # fmt: skip
    return _saved(transformers.CLIPModel(config), tmp_path_factory.mktemp("clip"))


def _hf(path) -> tuple[dict, dict]:
    return load_file(path / "model.safetensors"), json.loads((path / "config.json").read_text())


def test_vit_matches_transformers(vit_dir):
    path, reference = vit_dir
    converted = converters.convert("hf-vit", path, SPEC)
    assert converted.arch == "vit" and converted.heads == LABELS
    pixels = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        expected = reference(pixel_values=_nchw(pixels)).logits.numpy()
    assert _max_diff(converted.model(pixels), expected) < TOLERANCE
    assert converted.model.features(pixels).shape == (4, 64)

    # The hub stores (arch, JSON config, state) and rebuilds the model from the registry.
    config = json.loads(json.dumps(converted.config))
    abstract = nets.abstract("vit", config, len(LABELS))
    digest = checkpoint.save(path / "restored", converted.model)
    restored = checkpoint.restore(path / "restored", abstract, digest)
    assert _max_diff(restored(pixels), expected) < TOLERANCE


def test_vit_converter_names_what_is_wrong(vit_dir):
    path, _ = vit_dir
    tensors, config = _hf(path)
    key = "vit.encoder.layer.1.attention.attention.key.weight"
    with pytest.raises(ValueError, match=f"{key}: shape"):
        hf_vit.convert({**tensors, key: np.zeros((64, 32), np.float32)}, SPEC, config=config)
    missing = "vit.encoder.layer.2.output.dense.bias"
    with pytest.raises(ValueError, match=f"no tensor '{missing}'"):
        hf_vit.convert({k: v for k, v in tensors.items() if k != missing}, SPEC, config=config)
    with pytest.raises(ValueError, match="does not use.*vit.extra.weight"):
        hf_vit.convert({**tensors, "vit.extra.weight": np.zeros(3, np.float32)}, SPEC, config=config)
    with pytest.raises(ValueError, match="model_type 'deit'"):
        hf_vit.convert(tensors, SPEC, config={**config, "model_type": "deit"})
    with pytest.raises(ValueError, match="input_spec shape"):
        hf_vit.convert(tensors, {**SPEC, "shape": [28, 28, 1]}, config=config)
    with pytest.raises(ValueError, match="hidden_act 'relu'"):
        hf_vit.convert(tensors, SPEC, config={**config, "hidden_act": "relu"})


def _texts(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A padded batch of different lengths, [BOS, words..., EOS]; one row pads with the EOS id, as CLIP's tokenizer."""
    lengths = [5, 9, POSITIONS, 2, 12]
    ids = np.zeros((len(lengths), POSITIONS), np.int64)
    mask = np.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, :n] = [BOS, *rng.integers(1, BOS, n - 2), EOS]
        mask[i, :n] = 1
    ids[4, 12:] = EOS
    return ids, mask


def test_clip_matches_transformers(clip_dir):
    path, reference = clip_dir
    model = hf_clip.convert(*_hf(path))
    rng = np.random.default_rng(0)
    pixels = rng.normal(size=(3, 32, 32, 3)).astype(np.float32)
    ids, mask = _texts(rng)
    with torch.no_grad():
        expected = reference(
            input_ids=torch.from_numpy(ids), pixel_values=_nchw(pixels), attention_mask=torch.from_numpy(mask)
        )
    assert _max_diff(model.image_embeddings(pixels), expected.image_embeds) < TOLERANCE
    assert _max_diff(model.text_embeddings(ids.astype(np.int32), mask), expected.text_embeds) < TOLERANCE
    assert _max_diff(model(pixels, ids.astype(np.int32), mask), expected.logits_per_image) < TOLERANCE
    np.testing.assert_allclose(np.linalg.norm(model.image_embeddings(pixels), axis=1), 1.0, atol=1e-5)

    # Rows without the EOS token pool position 0; legacy configs (eos_token_id 2) pool at the largest id instead.
    unmarked = rng.integers(1, BOS, (3, 7))
    for eos in (EOS, 2):
        reference.text_model.eos_token_id = model.text.eos_token_id = eos
        with torch.no_grad():
            expected = reference.get_text_features(input_ids=torch.from_numpy(unmarked)).pooler_output
        expected = expected / expected.norm(dim=-1, keepdim=True)
        assert _max_diff(model.text_embeddings(unmarked.astype(np.int32)), expected) < TOLERANCE
    reference.text_model.eos_token_id = EOS


def test_clip_converter_names_what_is_wrong(clip_dir):
    path, _ = clip_dir
    tensors, config = _hf(path)
    key = "vision_model.embeddings.patch_embedding.weight"
    with pytest.raises(ValueError, match=f"{key}: shape"):
        hf_clip.convert({**tensors, key: np.zeros((64, 3, 4, 4), np.float32)}, config)
    key = "text_model.embeddings.position_embedding.weight"
    with pytest.raises(ValueError, match=f"{key}: shape"):
        hf_clip.convert(tensors, {**config, "text_config": {**config["text_config"], "max_position_embeddings": 20}})
    missing = "vision_model.post_layernorm.bias"
    with pytest.raises(ValueError, match=f"no tensor '{missing}'"):
        hf_clip.convert({k: v for k, v in tensors.items() if k != missing}, config)
    with pytest.raises(ValueError, match="does not use.*text_model.pooler.weight"):
        hf_clip.convert({**tensors, "text_model.pooler.weight": np.zeros(3, np.float32)}, config)
    with pytest.raises(ValueError, match="model_type 'siglip' is not 'clip'"):
        hf_clip.convert(tensors, {**config, "model_type": "siglip"})
    with pytest.raises(ValueError, match="hidden_act 'relu'"):
        hf_clip.convert(tensors, {**config, "vision_config": {**config["vision_config"], "hidden_act": "relu"}})
    # Older checkpoints carry the position-id buffers: known, and not weights.
    buffers = {f"{t}.embeddings.position_ids": np.arange(4)[None] for t in ("text_model", "vision_model")}
    hf_clip.convert({**tensors, **buffers}, config)


def _write_tokenizer(path) -> None:
    """A tiny word-level tokenizer.json in CLIP's shape: BOS text EOS, ids below the vocabulary size."""
    from tokenizers import Tokenizer, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: 10 + i for i, w in enumerate(["a", "photo", "of", "cat", "dog"])}}
    tokenizer = Tokenizer(WordLevel({**vocab, "<bos>": BOS, "<eos>": EOS}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", BOS), ("<eos>", EOS)]
    )
    tokenizer.save(str(path / "tokenizer.json"))


def test_clip_load_tokenizes_and_embeds(clip_dir, monkeypatch, tmp_path):
    path, reference = clip_dir
    _write_tokenizer(path)
    model, tokenizer = hf_clip.load(path)
    ids, mask = hf_clip.tokenize(tokenizer, ["a cat", "a photo of a dog", "a zebra"])
    assert ids.dtype == np.int32 and ids.shape == (3, 7)
    assert ids[0].tolist() == [BOS, 10, 13, EOS, 0, 0, 0] and mask[0].tolist() == [1, 1, 1, 1, 0, 0, 0]
    with torch.no_grad():
        expected = reference.get_text_features(
            input_ids=torch.from_numpy(ids.astype(np.int64)), attention_mask=torch.from_numpy(mask.astype(np.int64))
        ).pooler_output
    expected = expected / expected.norm(dim=-1, keepdim=True)
    assert _max_diff(model.text_embeddings(ids, mask), expected) < TOLERANCE
    long, _ = hf_clip.tokenize(tokenizer, ["a photo of a cat " * 10])
    assert long.shape == (1, POSITIONS) and long[0, -1] == EOS  # truncated to the positions, EOS kept

    # A name that is no directory is a Hub repo: downloaded (here, faked) with only the files load reads.
    calls = []

    def snapshot_download(name, allow_patterns):
        calls.append((name, allow_patterns))
        return str(path)

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=snapshot_download))
    remote, _ = hf_clip.load("someone/tiny-clip")
    assert calls == [("someone/tiny-clip", ["config.json", "model.safetensors", "tokenizer.json"])]
    assert jax.tree.all(
        jax.tree.map(np.array_equal, nnx.to_pure_dict(nnx.state(remote)), nnx.to_pure_dict(nnx.state(model)))
    )
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        hf_clip.load(tmp_path / "missing")  # a local path: never sent to the Hub
    assert len(calls) == 1
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    with pytest.raises(ImportError, match="pip install huggingface_hub"):
        hf_clip.load("someone/tiny-clip")


def test_a_converted_clip_serves_as_the_general_model(clip_dir, hub_copy):
    """The `clip` backend: CLIP's image tower with heads from its text tower; the engine runs it like any model."""
    from mll_jax import engine
    from mll_jax.zoo import clip_general, general

    path, reference = clip_dir
    _write_tokenizer(path)
    general.add_to_hub(hub_copy, general.GeneralSpec("clip", source=str(path)))
    entry = hub_copy.entry(hub_copy.general_id)
    nodes = sorted(hub_copy.sdag.graph)
    assert entry.arch == "clip-image" and list(entry.heads) == nodes and entry.role == "general"
    images = hub_copy.store.images[:16]
    ours = engine.from_hub(hub_copy, [hub_copy.general_id]).probabilities(images)[hub_copy.general_id]

    pixels = np.asarray(clip.pixels(preprocess(images, entry.input_spec), 32))
    _, tokenizer = hf_clip.load(path)
    ids, mask = hf_clip.tokenize(tokenizer, clip_general.node_prompts(hub_copy.sdag, nodes))
    with torch.no_grad():
        logits = reference(
            pixel_values=_nchw(pixels),
            input_ids=torch.from_numpy(ids.astype(np.int64)),
            attention_mask=torch.from_numpy(mask.astype(np.int64)),
        ).logits_per_image
    assert _max_diff(ours, torch.softmax(logits, -1)) < TOLERANCE
