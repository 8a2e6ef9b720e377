"""The engine against the plain per-model forward, on the real demo hub's checkpoints."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import mll_jax as mll
from mll_jax import engine, labeling, nets
from mll_jax.configs.engine import STEP_ROWS
from mll_jax.data.preprocess import preprocess
from mll_jax.engine import tuning
from mll_jax.labeling import rule
from mll_jax.selection.chco import EPS

# bfloat16 keeps 8 significant bits: a response of about 0.5 moves by up to 0.002 per rounding
BF16_MARGIN = 0.005


@pytest.fixture(scope="module")
def images(hub):
    return hub.store.images[:300]  # 300: not a multiple of the batch sizes below


@pytest.fixture(scope="module")
def plain(hub, images):
    """What a JAX user writes first: one jitted forward per model (backbone + heads composed)."""
    out = {}
    for model_id, entry in hub.entries.items():
        model = hub.load_model(model_id)
        x = preprocess(images, entry.input_spec)
        if backbone := entry.backbone:
            trunk = hub.load_backbone(backbone)
            logits = jax.jit(lambda x, b=trunk, m=model: m(b.features(x)))(x)
        else:
            logits = jax.jit(lambda x, m=model: m(x))(x)
        out[model_id] = np.asarray(jax.nn.softmax(logits, -1))
    return out


def test_the_demo_hub_has_a_shared_backbone_family(hub):
    engine_ = engine.from_hub(hub, list(hub.entries))
    shared = [g for g in engine_.groups if g.layout.strategy == "shared"]
    assert len(shared) == 1 and len(shared[0].members) == 3
    assert {m.backbone for m in shared[0].members} == {"family-cnn"}
    assert all(len(g.members) >= 2 for g in engine_.groups if g.layout.strategy in ("vmap", "map"))


@pytest.mark.parametrize("strategy", tuning.STRATEGIES)
def test_every_strategy_equals_the_plain_loop(hub, images, plain, strategy):
    got = engine.from_hub(hub, list(hub.entries), batch_size=128, strategy=strategy).probabilities(images)
    assert got.keys() == plain.keys()
    for model_id, probs in got.items():
        assert probs.shape == plain[model_id].shape
        np.testing.assert_allclose(probs, plain[model_id], atol=2e-6, err_msg=model_id)


@pytest.mark.parametrize("pad_heads", [None, True, False])
def test_groups_of_one_signature_with_different_head_counts(hub, images, plain, pad_heads):
    # tops-mlp has 3 heads, weak-noisy-mlp 4: each alone, then stacked; padded heads must not show
    for ids in (["tops-mlp"], ["weak-noisy-mlp"], ["tops-mlp", "weak-noisy-mlp"]):
        runner = engine.from_hub(hub, ids, batch_size=64, pad_heads=pad_heads)
        got = runner.probabilities(images)
        for model_id in ids:
            np.testing.assert_allclose(got[model_id], plain[model_id], atol=2e-6, err_msg=model_id)
        widths = {g.width for g in runner.groups}
        if pad_heads is not None:
            assert widths == {8 if pad_heads else len(plain[ids[-1]][0])}, widths


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_a_batch_computed_in_steps_equals_the_plain_loop(hub, images, plain, strategy):
    ids = ["footwear-cnn", "casual-cnn", "family-tops", "family-footwear", "general"]
    runner = engine.from_hub(hub, ids, batch_size=128, step_rows=32, strategy=strategy)
    assert set(runner.step_sizes.values()) == {32} and {g.steps for g in runner.groups} == {4}
    got = runner.probabilities(images)  # 300 rows: two batches of 128 and a padded one, 4 steps each
    for model_id in ids:
        np.testing.assert_allclose(got[model_id], plain[model_id], atol=2e-6, err_msg=model_id)


def test_the_rows_a_step_are_measured_and_remembered(hub):
    runner = engine.from_hub(hub, ["footwear-cnn"], batch_size=256)
    assert runner.step_sizes["footwear-cnn"] in (256, *STEP_ROWS)
    mine = {k: r for k, r in tuning.measured().items() if k.endswith(tuning.code_version())}
    steps = [r for k, r in mine.items() if "1 models|loop|" in k and "steps of a batch|batch 256|float32" in k]
    # one step of 256 rows, or 2 of 128 or 4 of 64 (STEP_ROWS below the batch size)
    assert steps and set(steps[0]["seconds"]) == {"1", "2", "4"}
    assert runner.step_sizes["footwear-cnn"] == 256 // int(steps[0]["strategy"])


def test_bad_step_rows_are_explained(hub):
    with pytest.raises(ValueError, match="step_rows must divide the batch size 128"):
        engine.from_hub(hub, ["footwear-cnn"], batch_size=128, step_rows=48)


def test_streamed_batches_equal_one_array(hub, images):
    runner = engine.from_hub(hub, ["footwear-cnn", "family-tops", "general"], batch_size=64)
    whole = runner.probabilities(images)
    ragged = (images[a:b] for a, b in [(0, 7), (7, 150), (150, 151), (151, 300)])
    streamed = runner.probabilities(ragged, progress="streaming")
    for model_id in whole:
        np.testing.assert_array_equal(streamed[model_id], whole[model_id])


def test_bfloat16_is_close_to_float32_and_keeps_every_head_label(hub, hub_copy, plain, images):
    bf16 = engine.from_hub(hub, list(hub.entries), dtype="bfloat16").probabilities(images)
    worst = max(float(np.abs(bf16[i] - plain[i]).max()) for i in plain)
    mean = np.mean([np.abs(bf16[i] - plain[i]).mean() for i in plain])
    assert worst < 0.1 and mean < 2e-3, (worst, mean)
    labeling.label(hub_copy, force=True, dtype="bfloat16", progress=False)
    for model_id in hub.ids("expert"):
        low, full = (h.labels(model_id)["response"].astype(np.float32) for h in (hub_copy, hub))
        flipped = rule.fired(low) != rule.fired(full)
        # a label may change only where float32 puts the response within bfloat16's error of the threshold
        assert np.all(np.abs(full[flipped] - rule.FIRES_AT) < BF16_MARGIN), (model_id, full[flipped])
        same = [h.concepts for h in labeling.head_labels(hub_copy, model_id)]
        assert (same == [h.concepts for h in labeling.head_labels(hub, model_id)]) == (not flipped.any()), model_id


def test_the_measured_strategy_is_remembered_and_can_be_forced(hub, monkeypatch):
    three = engine.from_hub(hub, ["footwear-mlp", "bottoms-mlp", "sandal-boot-dress-mlp"], batch_size=96)
    assert [len(g.members) for g in three.groups] == [2, 1]  # stacks of power-of-two sizes: 2, then 1
    table = tuning.measured()
    mine = {k: r for k, r in table.items() if k.endswith(tuning.code_version())}  # measured on this code
    remembered = [r for k, r in mine.items() if "2 models|heads " in k and "batch 96|float32" in k]
    assert remembered and remembered[0]["strategy"] in tuning.STRATEGIES
    assert set(remembered[0]["seconds"]) == set(tuning.STRATEGIES)
    # the head width is measured too: three heads as they are, or padded to a multiple of HEAD_ALIGN
    widths = [r for k, r in mine.items() if "1 models|head width for 3|batch 96|float32" in k]
    assert widths and set(widths[0]["seconds"]) == {"3", str(engine.forward.HEAD_ALIGN)}
    monkeypatch.setenv("MLL_JAX_STRATEGY", "map")
    forced = engine.from_hub(hub, ["footwear-mlp", "bottoms-mlp"], batch_size=96)
    assert set(forced.strategies.values()) == {"map"}
    monkeypatch.setenv("MLL_JAX_STRATEGY", "fastest")
    with pytest.raises(ValueError, match="MLL_JAX_STRATEGY"):
        engine.from_hub(hub, ["footwear-mlp", "bottoms-mlp"], batch_size=97)


def test_strategies_are_timed_in_rounds_of_rotating_order():
    calls = []
    runs = {name: (lambda name=name: calls.append(name)) for name in ("vmap", "map", "loop")}
    times = tuning.timings(runs, rounds=4)
    assert set(times) == set(runs) and all(t >= 0 for t in times.values())
    # one warm-up call each, then every round runs each once, each round starting one later than the one before
    assert calls[:3] == ["vmap", "map", "loop"]
    rounds = [calls[3 + 3 * r : 6 + 3 * r] for r in range(4)]
    assert [r[0] for r in rounds] == ["vmap", "map", "loop", "vmap"]
    assert all(sorted(r) == sorted(runs) for r in rounds) and len(calls) == 3 + 3 * 4
    calls.clear()
    tuning.timings(runs, rounds=4, budget_s=0.0)  # past its budget after the first round: one round only
    assert len(calls) == 3 + 3


def test_bad_engine_options_are_explained(hub):
    member = engine.Member("m", hub.load_model("general"), hub.entry("general").input_spec)
    with pytest.raises(ValueError, match="dtype"):
        engine.Engine([member], dtype="float16")
    with pytest.raises(ValueError, match="strategy"):
        engine.Engine([member], strategy="pmap")
    with pytest.raises(ValueError, match="unique"):
        engine.Engine([member, member])
    heads = engine.Member("h", hub.load_model("family-tops"), member.input_spec, backbone="family-cnn")
    with pytest.raises(ValueError, match="backbones"):
        engine.Engine([heads])


def test_heads_must_fit_their_backbone(hub_copy):
    registry = hub_copy.dump()
    spec = hub_copy.entry("family-tops").input_spec
    wrong = nets.build("linear", {"in_features": 64}, 2)
    with pytest.raises(ValueError, match="features"):
        hub_copy.add("bad-heads", wrong, "linear", {"in_features": 64}, ["Sandal", "Bag"], spec, backbone="family-cnn")
    with pytest.raises(ValueError, match="add_backbone"):
        hub_copy.add("bad-heads", wrong, "linear", {"in_features": 64}, ["Sandal", "Bag"], spec, backbone="nope")
    with pytest.raises(ValueError, match="used by"):
        hub_copy.add_backbone("family-cnn", hub_copy.load_backbone("family-cnn"), "cnn", {}, spec)
    assert hub_copy.dump() == registry


def test_reuse_runs_only_the_selected_models(hub, test_split):
    sel = mll.select(hub, ["sandal", "sneakers", "ankle boot", "shirt"])
    runner = engine.from_hub(hub, list(sel.models))
    assert {m.id for g in runner.groups for m in g.members} == set(sel.models)
    images = test_split.images[:200]
    probs = runner.probabilities(images)
    # the classifier's logits, recomputed from each used model's probabilities
    z = np.broadcast_to(np.asarray(sel.biases), (len(images), len(sel.classes))).copy()
    for k, choices in enumerate(sel.choices):
        for c in choices:
            scale = c.weight * np.exp(-sel.temperatures[c.model])
            z[:, k] += scale * np.log(probs[c.model][:, c.heads].sum(1) + EPS)
    np.testing.assert_allclose(np.asarray(mll.reuse(hub, sel)(images)), z, rtol=1e-4, atol=1e-4)


ON_EIGHT_DEVICES = """
import json, sys
import jax, numpy as np
from mll_jax import engine
from mll_jax.engine import sharding
from mll_jax.hub import Hub
assert jax.device_count() == 8, jax.devices()
hub = Hub.open(sys.argv[1])
mesh = sharding.mesh(model=2)
runner = engine.from_hub(hub, list(hub.entries), batch_size=100, mesh=mesh, strategy=sys.argv[2])
out = runner.probabilities(hub.store.images[:300])
np.savez(sys.argv[3], **out)
print(json.dumps({g.layout.strategy: g.size for g in runner.groups}))
"""


@pytest.mark.parametrize("strategy", ["vmap", "loop"])
def test_one_and_eight_devices_agree(hub, hub_path, images, plain, tmp_path, strategy):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    out = tmp_path / "eight.npz"
    cmd = [sys.executable, "-c", ON_EIGHT_DEVICES, str(hub_path), strategy, str(out)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    sizes = json.loads(run.stdout.splitlines()[-1])
    if strategy == "vmap":
        assert sizes["shared"] == 4 and sizes["vmap"] % 2 == 0  # 3 family heads padded to the model axis
    with np.load(out) as eight:
        assert set(eight.files) == set(plain)
        for model_id in plain:
            np.testing.assert_allclose(eight[model_id], plain[model_id], atol=2e-6, err_msg=model_id)
