"""MiniLM in Flax against sentence-transformers, and the BERT converter against transformers."""

import numpy as np
import pytest

from mll_jax.concepts import text
from mll_jax.converters import hf_bert

SENTENCES = [
    "sandal",
    "a pair of sneakers",
    "kicks",
    "T-shirt, tee shirt, jersey: a close-fitting pullover shirt",
    "The quick brown fox jumps over the lazy dog. " * 8,  # long: several buckets, truncation
    "",
]


def test_minilm_matches_sentence_transformers():
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(str(text.model_dir()), device="cpu")
    expected = reference.encode(SENTENCES, normalize_embeddings=True)
    ours = text.embed(SENTENCES, batch_size=4)  # two batches, the second padded
    assert ours.shape == expected.shape == (len(SENTENCES), 384)
    cosine = (ours * expected).sum(1)
    assert cosine.min() > 1 - 1e-4, cosine
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_random_bert_matches_transformers():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
        max_position_embeddings=40,
    )  # fmt: skip
    torch.manual_seed(0)
    reference = transformers.BertModel(config, add_pooling_layer=False).eval()
    model = hf_bert.convert({k: v.numpy() for k, v in reference.state_dict().items()}, config.to_dict())
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 99, (3, 17)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 9:] = 0
    with torch.no_grad():
        expected = reference(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
    ours = np.asarray(model(ids.astype(np.int32), mask))
    real = mask.astype(bool)
    np.testing.assert_allclose(ours[real], expected.numpy()[real], atol=1e-4)


def test_bert_converter_names_what_is_wrong():
    from safetensors.numpy import load_file

    tensors = load_file(text.model_dir() / "model.safetensors")
    config = {"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
              "intermediate_size": 1536}  # fmt: skip
    missing = {k: v for k, v in tensors.items() if k != "encoder.layer.3.attention.self.key.bias"}
    with pytest.raises(ValueError, match="encoder.layer.3.attention.self.key.bias"):
        hf_bert.convert(missing, config)
    with pytest.raises(ValueError, match="embeddings.word_embeddings.weight: shape"):
        hf_bert.convert(tensors, {**config, "vocab_size": 100})
    with pytest.raises(ValueError, match="does not use"):
        hf_bert.convert({**tensors, "classifier.weight": np.zeros((2, 384), np.float32)}, config)
