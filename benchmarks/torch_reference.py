"""PyTorch reference-style inference for benchmarks only (never imported by `mll_jax`).

Converts mll_jax MLP / CNN experts (or a backbone plus linear heads) into equivalent torch
modules and runs the per-model batch loop that published Model Label Learning code uses.

    python benchmarks/torch_reference.py   # self-check: Flax vs torch probabilities
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from flax import nnx
from torch import nn

from mll_jax import nets
from mll_jax.data.preprocess import preprocess

# Where the torch side runs: the GPU when torch sees one (a GPU peer for a GPU engine), else the CPU.
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _linear(layer: nnx.Linear) -> nn.Linear:
    """A torch Linear with `layer`'s weights (kernel [in, out] -> weight [out, in])."""
    kernel = np.asarray(layer.kernel[...])
    out = nn.Linear(*kernel.shape, bias=layer.bias is not None)
    out.weight.data = torch.from_numpy(kernel.T.copy())
    if layer.bias is not None:
        out.bias.data = torch.from_numpy(np.asarray(layer.bias[...]).copy())
    return out


class _SameConv(nn.Module):
    """Conv with Flax 'SAME' padding (extra padding after, as XLA does), NCHW in and out."""

    def __init__(self, conv: nnx.Conv):
        super().__init__()
        if conv.padding != "SAME":
            raise ValueError(f"only 'SAME' padding is supported, got {conv.padding!r}")
        kernel = np.asarray(conv.kernel[...])  # HWIO
        self.kernel_size = kernel.shape[:2]
        strides = conv.strides
        self.strides = (strides, strides) if isinstance(strides, int) else tuple(strides)
        self.conv = nn.Conv2d(kernel.shape[2], kernel.shape[3], self.kernel_size, self.strides, bias=False)
        self.conv.weight.data = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
        self.conv.bias = (
            None if conv.bias is None else nn.Parameter(torch.from_numpy(np.asarray(conv.bias[...]).copy()))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for n, k, s in zip(reversed(x.shape[2:]), reversed(self.kernel_size), reversed(self.strides)):
            total = max((-(-n // s) - 1) * s + k - n, 0)
            pads += [total // 2, total - total // 2]
        return self.conv(F.pad(x, pads))


class _Flatten(nn.Module):
    """Flatten NCHW in Flax's NHWC order; 2-D input passes through."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)


def _features(model: nnx.Module) -> nn.Sequential:
    """Torch equivalent of `model.features` (NCHW input)."""
    if isinstance(model, nets.cnn.CNN) or hasattr(model, "convs"):
        blocks = [m for conv in model.convs for m in (_SameConv(conv), nn.ReLU())]
        return nn.Sequential(*blocks, _Flatten(), _linear(model.dense), nn.ReLU())
    if isinstance(model, nets.mlp.MLP) or hasattr(model, "layers"):
        return nn.Sequential(_Flatten(), *[m for layer in model.layers for m in (_linear(layer), nn.ReLU())])
    if isinstance(model, nets.linear.LinearHeads):
        return nn.Sequential(_Flatten())
    raise TypeError(f"unsupported model {type(model).__name__}")


def to_torch(model: nnx.Module) -> nn.Module:
    """An eval-mode torch module computing `model(x)` logits for NCHW float input."""
    return nn.Sequential(_features(model), _linear(model.head)).eval().to(DEVICE)


def to_torch_on_backbone(backbone: nnx.Module, heads: nnx.Module) -> nn.Module:
    """An eval-mode torch module computing `heads(backbone.features(x))` (backbone recomputed per expert)."""
    return nn.Sequential(_features(backbone), _features(heads), _linear(heads.head)).eval().to(DEVICE)


def reference_probabilities(
    torch_models: list[nn.Module],
    images: np.ndarray,
    mean: float,
    std: float,
    batch_size: int = 32,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> list[np.ndarray]:
    """Published-style loop: per model, per batch, uint8 NHWC -> NCHW float, normalise, forward, softmax."""
    results = []
    for model in torch_models:
        with torch.no_grad():
            batches = _inputs(images, mean, std, batch_size, dtype, channels_last)
            outs = [F.softmax(model(x).float(), dim=1) for x in batches]
        results.append(torch.cat(outs).cpu().numpy().astype(np.float32))
    return results


def _inputs(
    images: np.ndarray,
    mean: float,
    std: float,
    batch_size: int,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
):
    """uint8 NHWC images -> normalised NCHW batches of `dtype`, as published code feeds its models (in
    channels-last memory with `channels_last`)."""
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start : start + batch_size]).to(DEVICE).permute(0, 3, 1, 2).float()
        x = ((x / 255.0 - mean) / std).to(dtype)
        yield x.contiguous(memory_format=torch.channels_last) if channels_last else x


def efficientnet_lite(name: str, checkpoint, dtype: torch.dtype = torch.float32) -> nn.Module:
    """The reference PyTorch EfficientNet-Lite (`efficientnet_lite_pytorch`) with the state_dict at `checkpoint`,
    eval mode, channels-last memory (oneDNN's faster layout for it on CPU), in `dtype`."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(name)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return model.eval().to(DEVICE, dtype=dtype, memory_format=torch.channels_last)


def vmap_ensemble(torch_models: list[nn.Module]):
    """The ensemble a PyTorch user would write for models of one architecture: their parameters stacked once
    (`torch.func.stack_module_state`); the returned `probabilities(images, mean, std, batch_size)` runs one
    `torch.vmap` of `functional_call` per batch, under `no_grad`, and gives each model's probabilities."""
    import copy

    from torch.func import functional_call, stack_module_state

    params, buffers = stack_module_state(torch_models)
    base = copy.deepcopy(torch_models[0]).to("meta")
    ensemble = torch.vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), in_dims=(0, 0, None))

    def probabilities(images: np.ndarray, mean: float, std: float, batch_size: int = 32) -> list[np.ndarray]:
        with torch.no_grad():
            outs = [F.softmax(ensemble(params, buffers, x), dim=-1) for x in _inputs(images, mean, std, batch_size)]
        return list(torch.cat(outs, dim=1).cpu().numpy().astype(np.float32))  # [models, images, heads]

    return probabilities


def _self_check() -> None:
    """Flax vs torch probabilities on random images for every supported kind of model."""
    import jax

    spec = {"mean": 0.1307, "std": 0.3081}
    images = np.random.default_rng(0).integers(0, 256, (100, 28, 28, 1), dtype=np.uint8)
    backbone = nets.build("cnn", {"channels": [16, 32], "dense": 128}, 3, seed=4)
    heads = nets.build("linear", {"in_features": 128}, 4, seed=5)
    cases = {
        "mlp [256]": (nets.build("mlp", {"hidden": [256]}, 3, seed=1), None),
        "cnn [8,16] 64": (nets.build("cnn", {"channels": [8, 16], "dense": 64}, 3, seed=2), None),
        "cnn [24,48] 128": (nets.build("cnn", {"channels": [24, 48], "dense": 128}, 5, seed=3), None),
        "backbone+linear": (heads, backbone),
    }
    for name, (model, base) in cases.items():
        if base is None:
            expected = nnx.jit(lambda m, x: jax.nn.softmax(m(preprocess(x, spec))))(model, images)
            torch_model = to_torch(model)
        else:
            expected = nnx.jit(lambda m, b, x: jax.nn.softmax(m(b.features(preprocess(x, spec)))))(model, base, images)
            torch_model = to_torch_on_backbone(base, model)
        (got,) = reference_probabilities([torch_model], images, spec["mean"], spec["std"])
        diff = float(np.abs(got - np.asarray(expected)).max())
        print(f"{name:16s} shape {got.shape}  max abs diff {diff:.3e}")
        assert diff < 1e-5, (name, diff)


if __name__ == "__main__":
    _self_check()
