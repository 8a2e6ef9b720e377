"""MiniLM in Flax against sentence-transformers, the BERT converter against transformers, and the stored encoder."""

import json
import os
import subprocess
import sys

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


def _in_new_process(cache, code: str) -> dict:
    """`code`'s JSON line, run in a new process with `cache` as the cache."""
    env = {**os.environ, "MLL_JAX_CACHE": str(cache)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


EMBED = """
import json, sys
import numpy as np
from mll_jax import exported
from mll_jax.concepts import text
{before}
rows = text.embed({texts!r})
print(json.dumps({{"rows": rows.tolist(), "flax": "flax" in sys.modules, "traced": exported.traced()}}))
"""


def test_a_new_process_embeds_with_the_stored_weights_and_programs(tmp_path):
    texts = ["running shoes", "a tote bag, as in: hiking boots, parka, cargo pants, rain boots"]
    stale = tmp_path / "text" / "minilm-0123456789abcdef01234567.npz"  # an earlier release's weights
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"90 MB of weights")
    first = _in_new_process(tmp_path, EMBED.format(before="text.prepare()", texts=texts))
    assert not stale.exists(), "storing the weights removes those of other keys"
    assert first["traced"] == len(text.PREPARED_LENGTHS) + 1, "single texts' programs, and the batch of two's"
    later = _in_new_process(tmp_path, EMBED.format(before="", texts=texts))
    assert later["traced"] == 0 and not later["flax"], "a later process loads both: no Flax, no tracing"
    np.testing.assert_allclose(later["rows"], first["rows"], atol=1e-6)
    np.testing.assert_allclose(later["rows"], text.embed(texts), atol=1e-5)  # this process: its own shapes

    (weights,) = (tmp_path / "text").glob("*.leaves")
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a damaged file is never used: converted again and rewritten
    weights.write_bytes(bytes(data))
    repaired = _in_new_process(tmp_path, EMBED.format(before="", texts=texts))
    np.testing.assert_allclose(repaired["rows"], first["rows"], atol=1e-6)
    assert repaired["flax"] and weights.read_bytes() != bytes(data)
