"""Converters: PyTorch checkpoints become hub models with the same outputs, and work end to end."""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import mll_jax as mll  # noqa: E402
from mll_jax import cli, converters, labeling  # noqa: E402
from mll_jax.configs.selection import SelectionConfig  # noqa: E402
from mll_jax.converters import torch_sequential  # noqa: E402
from mll_jax.data import store as store_lib  # noqa: E402
from mll_jax.data.preprocess import preprocess  # noqa: E402

SPEC = {"shape": [28, 28, 1], "dtype": "uint8", "mean": 0.286, "std": 0.353}


def _torch_logits(net: nn.Module, images: np.ndarray, spec: dict) -> np.ndarray:
    x = torch.from_numpy(((images / 255.0 - spec["mean"]) / spec["std"]).astype(np.float32)).permute(0, 3, 1, 2)
    with torch.no_grad():
        return net.eval()(x).numpy()


def _state(net: nn.Module) -> dict:
    return {k: v.numpy() for k, v in net.state_dict().items()}


CASES = [
    ((28, 28, 1), {}, lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 3))),
    ((32, 32, 3), {}, lambda: nn.Sequential(nn.Flatten(), nn.Linear(3072, 32), nn.ReLU(), nn.Linear(32, 5))),
    (
        (28, 28, 1),
        {},
        lambda: nn.Sequential(
            nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(), nn.Flatten(),
            nn.Linear(16 * 7 * 7, 32), nn.ReLU(), nn.Linear(32, 4),
        ),
    ),
    (
        (32, 32, 3),
        {"padding": 2},
        lambda: nn.Sequential(
            nn.Conv2d(3, 8, 5, 2, 2), nn.ReLU(), nn.Conv2d(8, 16, 5, 2, 2), nn.ReLU(), nn.Flatten(),
            nn.Linear(16 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 4),
        ),
    ),
    (
        (28, 28, 1),
        {"stride": 1, "padding": 0},
        lambda: nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 16), nn.ReLU(), nn.Linear(16, 2)
        ),
    ),
]  # fmt: skip


@pytest.mark.parametrize("shape, layout, make", CASES)
def test_torch_sequential_parity(shape, layout, make):
    torch.manual_seed(0)
    net, spec = make(), {**SPEC, "shape": list(shape)}
    converted = torch_sequential.convert(_state(net), spec, **layout)
    images = np.random.default_rng(0).integers(0, 256, (32, *shape), dtype=np.uint8)
    ours = np.asarray(converted.model(preprocess(images, spec)))
    np.testing.assert_allclose(ours, _torch_logits(net, images, spec), atol=1e-4, rtol=0)


def test_bad_state_dicts_name_the_parameter(tmp_path):
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.ReLU(), nn.Linear(8, 2))
    state = _state(net)
    with pytest.raises(ValueError, match="1.weight takes 100 inputs"):
        torch_sequential.convert({**state, "1.weight": np.zeros((8, 100), np.float32)}, SPEC)
    with pytest.raises(ValueError, match="3.weight: shape"):
        torch_sequential.convert({**state, "3.weight": np.zeros((2, 5), np.float32)}, SPEC)
    with pytest.raises(ValueError, match="'5.running_mean': a batch norm after the Linear 3 is not part"):
        torch_sequential.convert({**state, "5.running_mean": np.zeros(8, np.float32)}, SPEC)
    with pytest.raises(ValueError, match="3.weight is missing"):
        torch_sequential.convert({k: v for k, v in state.items() if k != "3.weight"}, SPEC)
    (tmp_path / "m.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match="unknown checkpoint type"):
        converters.files.read_tensors(tmp_path / "m.onnx")


class _Boom:
    def __reduce__(self):
        return (print, ("code from a checkpoint ran",))


def test_reading_a_checkpoint_never_runs_its_code(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"0.weight": torch.zeros(2, 2), "hook": _Boom()}, path)
    with pytest.raises(ValueError, match="not a plain state_dict"):
        converters.files.read_tensors(path)
    path.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(ValueError, match="not a plain state_dict"):
        converters.files.read_tensors(path)
    assert "code from a checkpoint ran" not in capsys.readouterr().out


def _train(net: nn.Module, images: np.ndarray, targets: np.ndarray, epochs: int = 3) -> nn.Module:
    torch.manual_seed(0)
    x = torch.from_numpy(((images / 255.0 - SPEC["mean"]) / SPEC["std"]).astype(np.float32)).permute(0, 3, 1, 2)
    y = torch.from_numpy(targets.astype(np.int64))
    optimizer = torch.optim.Adam(net.parameters(), 2e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(128):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            optimizer.step()
    return net.eval()


def test_bring_your_own_pytorch_experts_end_to_end(hub_copy, test_split, tmp_path):
    """Two PyTorch experts trained here on real classes, converted, labelled, selected and reused."""
    for model_id in hub_copy.ids("expert"):
        hub_copy.remove(model_id)  # only the general model is left: the task is covered by the new experts alone
    pool = store_lib.expert_pool(hub_copy.store_spec)
    experts = {
        "torch-mlp": (
            [8, 1, 5],
            ["Bag", "Trouser", "Sandal"],
            nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 3)),
        ),
        "torch-cnn": (
            [5, 8, 7],
            ["Sandal", "Bag", "Sneaker"],
            nn.Sequential(
                nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(), nn.Flatten(),
                nn.Linear(16 * 7 * 7, 32), nn.ReLU(), nn.Linear(32, 3),
            ),
        ),
    }  # fmt: skip
    for (model_id, (classes, heads, net)), suffix in zip(experts.items(), [".pt", ".safetensors"]):
        keep = np.flatnonzero(np.isin(pool.labels, classes))[:9000]
        targets = (pool.labels[keep][:, None] == np.array(classes)).argmax(1)  # head h is classes[h]
        _train(net, pool.images[keep], targets)
        path = tmp_path / f"{model_id}{suffix}"
        if suffix == ".pt":
            torch.save(net.state_dict(), path)
        else:
            from safetensors.torch import save_file

            save_file(net.state_dict(), path)
        code = cli.main(
            ["--hub", str(hub_copy.path), "convert", "torch-sequential", str(path), "--id", model_id, "--heads", *heads,
             "--mean", str(SPEC["mean"]), "--std", str(SPEC["std"])]
        )  # fmt: skip
        assert code == 0
    hub = mll.Hub.open(hub_copy.path)
    assert labeling.label(hub, progress=False) == ["torch-mlp", "torch-cnn"]
    measured = {h.declared: h.concepts for h in labeling.head_labels(hub, "torch-mlp")}
    assert "trouser.n.01" in measured["Trouser"] and "bag.n.04" in measured["Bag"]
    weighed = mll.select(hub, ["bag", "trousers", "sandal"])  # the general model is a candidate for every class
    assert not weighed.uncovered
    assert all(any(c["model"] in experts for c in considered) for considered in weighed.considered)
    # The general model can match them on such easy classes (validation accuracy 1.0 either way), so which one a
    # tie goes to is numerics; kept to uncovered classes it leaves the converted experts alone to answer.
    sel = mll.select(hub, ["bag", "trousers", "sandal"], config=SelectionConfig(patch_every_class=False))
    assert not sel.uncovered and set(sel.models) <= set(experts)
    y = np.full(len(test_split), -1)
    names = np.array(test_split.synsets)[test_split.labels]
    for k, concepts in enumerate(sel.concepts):
        y[np.isin(names, concepts)] = k
    keep = y >= 0
    accuracy = float(np.mean(np.asarray(mll.reuse(hub, sel)(test_split.images[keep])).argmax(1) == y[keep]))
    assert accuracy > 0.9, accuracy  # chance is 1/3
