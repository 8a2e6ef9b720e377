"""ResNet converters (torchvision, Hugging Face) and batch norm in torch-sequential: same logits as PyTorch.

Every reference gets random batch-norm statistics and affine parameters first: with
PyTorch's initial ones (mean 0, var 1, scale 1, shift 0) a batch norm is nearly the
identity, and a converter that dropped or swapped them would still pass.
"""

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from torch import nn  # noqa: E402

from mll_jax import converters, engine  # noqa: E402
from mll_jax.converters import hf_resnet, torch_sequential, torchvision_resnet  # noqa: E402
from mll_jax.data.preprocess import preprocess  # noqa: E402
from mll_jax.nets.resnet import LAYOUTS  # noqa: E402

SPEC = {"shape": [64, 64, 3], "dtype": "uint8", "mean": 0.45, "std": 0.25}
GRAY_SPEC = {"shape": [28, 28, 1], "dtype": "uint8", "mean": 0.286, "std": 0.353}
TOLERANCE = 1e-4


# -- a compact torchvision ResNet (torchvision itself is not a dependency); its state_dict keys are torchvision's
def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, width, 3, stride), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = _conv(width, width, 3), nn.BatchNorm2d(width)
        self.relu, self.downsample = nn.ReLU(), downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, width, 1), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = _conv(width, width, 3, stride), nn.BatchNorm2d(width)  # stride on the 3x3 (v1.5)
        self.conv3, self.bn3 = _conv(width, width * 4, 1), nn.BatchNorm2d(width * 4)
        self.relu, self.downsample = nn.ReLU(), downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class TorchvisionResNet(nn.Module):
    def __init__(self, block, depths, widths=(64, 128, 256, 512), stem=64, in_channels=3, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, stem, 7, 2, 3, bias=False)
        self.bn1, self.relu, self.maxpool = nn.BatchNorm2d(stem), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        cin = stem
        for s, (depth, width) in enumerate(zip(depths, widths)):
            blocks = []
            for b in range(depth):
                stride = 2 if s > 0 and b == 0 else 1
                out = width * block.expansion
                downsample = None
                if stride != 1 or cin != out:
                    downsample = nn.Sequential(_conv(cin, out, 1, stride), nn.BatchNorm2d(out))
                blocks.append(block(cin, width, stride, downsample))
                cin = out
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.num_stages = len(depths)
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for s in range(self.num_stages):
            x = getattr(self, f"layer{s + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _randomise_batch_norms(net: nn.Module, spec: dict, seed: int = 0) -> nn.Module:
    """Random running statistics and affine parameters in every batch norm, and logits up to 10.

    Variances down to 0.1 make a wrong epsilon visible. The last Linear is rescaled so
    the test images' largest logit is 10: random-init logits range from ~0.1 (where an
    absolute 1e-4 would be lax) to thousands in deep nets (where fp32 rounding exceeds it).
    """
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
                module.running_var.copy_(torch.rand(n, generator=generator) * 0.9 + 0.1)
                if module.affine:
                    module.weight.copy_(torch.rand(n, generator=generator) * 0.6 + 0.4)
                    module.bias.copy_(torch.randn(n, generator=generator) * 0.2)
            module.num_batches_tracked.fill_(7)
    last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    scale = 10.0 / np.abs(_torch_logits(net, _images(spec), spec)).max()
    with torch.no_grad():
        last.weight.mul_(float(scale))
        last.bias.mul_(float(scale))
    return net.eval()


def _state(net: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in net.state_dict().items()}


def _images(spec: dict, n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *spec["shape"]), dtype=np.uint8)


def _torch_logits(net: nn.Module, images: np.ndarray, spec: dict) -> np.ndarray:
    x = torch.from_numpy(((images / 255.0 - spec["mean"]) / spec["std"]).astype(np.float32)).permute(0, 3, 1, 2)
    with torch.no_grad():
        out = net.eval()(x)
    return (out.logits if hasattr(out, "logits") else out).numpy()


def _assert_parity(case: str, model, net: nn.Module, spec: dict) -> None:
    images = _images(spec)
    ours = np.asarray(model(preprocess(images, spec)))
    theirs = _torch_logits(net, images, spec)
    print(f"{case}: max |diff| {np.abs(ours - theirs).max():.2e} (logits up to {np.abs(theirs).max():.1f})")  # -s
    np.testing.assert_allclose(ours, theirs, atol=TOLERANCE, rtol=0, err_msg=case)


SMALL = {"widths": (8, 16, 32, 64), "stem": 8}
TORCHVISION_CASES = [
    ("resnet18", {}),  # full width
    ("resnet18", SMALL),
    ("resnet34", SMALL),
    ("resnet50", SMALL),
]


@pytest.mark.parametrize(
    "name, size", TORCHVISION_CASES, ids=[f"{n}-{'small' if s else 'full'}" for n, s in TORCHVISION_CASES]
)
def test_torchvision_resnet_parity(name, size):
    torch.manual_seed(0)
    layout = LAYOUTS[name]
    block = Bottleneck if layout["block"] == "bottleneck" else BasicBlock
    net = _randomise_batch_norms(TorchvisionResNet(block, layout["depths"], **size), SPEC)
    converted = torchvision_resnet.convert(_state(net), SPEC)
    assert converted.arch == "resnet" and converted.model.head.out_features == 10
    assert {k: converted.config[k] for k in ("block", "depths")} == layout
    if size:
        assert converted.config["widths"] == list(size["widths"]) and converted.config["stem_width"] == size["stem"]
    _assert_parity(f"torchvision {name}{' small' if size else ''}", converted.model, net, SPEC)


HF_CASES = [
    ("basic", [2, 2, 2, 2], [8, 16, 32, 64], {}),
    ("basic", [3, 4, 6, 3], [8, 16, 32, 64], {}),
    ("bottleneck", [3, 4, 6, 3], [32, 64, 128, 256], {}),
    ("bottleneck", [1, 1], [16, 32], {"downsample_in_first_stage": True, "downsample_in_bottleneck": True}),
]


@pytest.mark.parametrize("layer_type, depths, hidden_sizes, options", HF_CASES)
def test_hf_resnet_parity_from_a_model_directory(tmp_path, layer_type, depths, hidden_sizes, options):
    config = transformers.ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=hidden_sizes, depths=depths, layer_type=layer_type,
        num_labels=5, id2label={i: f"class {i}" for i in range(5)}, **options,
    )  # fmt: skip
    torch.manual_seed(0)
    net = _randomise_batch_norms(transformers.ResNetForImageClassification(config), SPEC)
    net.save_pretrained(tmp_path)  # config.json + model.safetensors
    assert (tmp_path / "model.safetensors").is_file()
    converted = converters.convert("hf-resnet", tmp_path, SPEC)
    assert converted.heads == [f"class {i}" for i in range(5)]
    assert converted.config["block"] == layer_type and converted.config["depths"] == depths
    _assert_parity(f"hf {layer_type} {depths} {options or ''}".strip(), converted.model, net, SPEC)


def test_hf_resnet_refuses_what_it_does_not_map():
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")
    net = transformers.ResNetForImageClassification(config)
    state = _state(net)
    with pytest.raises(ValueError, match="hidden_act 'gelu'"):
        hf_resnet.convert(state, SPEC, config={**config.to_dict(), "hidden_act": "gelu"})
    with pytest.raises(ValueError, match="config.json"):
        hf_resnet.convert(state, SPEC)
    with pytest.raises(ValueError, match="model_type 'vit'"):
        hf_resnet.convert(state, SPEC, config={**config.to_dict(), "model_type": "vit"})
    with pytest.raises(ValueError, match="3 input channels, the input spec has 1"):
        hf_resnet.convert(state, GRAY_SPEC, config=config.to_dict())
    shortcut = "resnet.encoder.stages.1.layers.0.shortcut.normalization.running_mean"
    with pytest.raises(ValueError, match=f"no tensor '{shortcut}'"):
        hf_resnet.convert({k: v for k, v in state.items() if k != shortcut}, SPEC, config=config.to_dict())
    with pytest.raises(ValueError, match=r"does not use: \['resnet.pooler.weight'\]"):
        hf_resnet.convert({**state, "resnet.pooler.weight": np.zeros(1, np.float32)}, SPEC, config=config.to_dict())


SEQUENTIAL_BN = {
    "affine": lambda: nn.Sequential(
        nn.Conv2d(1, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16),
        nn.ReLU(), nn.Flatten(), nn.Linear(16 * 7 * 7, 32), nn.ReLU(), nn.Linear(32, 4),
    ),
    "no-affine": lambda: nn.Sequential(  # bias-free convs, and a batch norm without affine parameters
        nn.Conv2d(1, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8, affine=False), nn.ReLU(), nn.Flatten(),
        nn.Linear(8 * 14 * 14, 16), nn.ReLU(), nn.Linear(16, 3),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", SEQUENTIAL_BN)
def test_torch_sequential_batch_norm_parity(case):
    torch.manual_seed(0)
    net = _randomise_batch_norms(SEQUENTIAL_BN[case](), GRAY_SPEC)
    converted = torch_sequential.convert(_state(net), GRAY_SPEC)
    assert converted.arch == "cnn" and converted.config["batch_norm"] is True
    _assert_parity(f"torch-sequential batch norm {case}", converted.model, net, GRAY_SPEC)


def test_torch_sequential_batch_norm_errors():
    torch.manual_seed(0)
    state = _state(SEQUENTIAL_BN["affine"]())
    with pytest.raises(ValueError, match="1.running_var is missing"):
        torch_sequential.convert({k: v for k, v in state.items() if k != "1.running_var"}, GRAY_SPEC)
    with pytest.raises(ValueError, match="'10.running_mean'.*after the Linear 9"):
        torch_sequential.convert({**state, "10.running_mean": np.zeros(4, np.float32)}, GRAY_SPEC)
    with pytest.raises(ValueError, match=r"convs \['3'\] have no batch norm"):
        torch_sequential.convert({k: v for k, v in state.items() if not k.startswith("4.")}, GRAY_SPEC)
    with pytest.raises(ValueError, match="4.running_mean: shape"):
        torch_sequential.convert({**state, "4.running_mean": np.zeros(3, np.float32)}, GRAY_SPEC)
    norm_after_relu = {k.replace("1.", "2.", 1) if k.startswith("1.") else k: v for k, v in state.items()}
    with pytest.raises(ValueError, match="'2.running_mean': a batch norm must come right after its Conv2d"):
        torch_sequential.convert(norm_after_relu, GRAY_SPEC)


def test_torchvision_resnet_errors_name_the_tensor():
    torch.manual_seed(0)
    state = _state(TorchvisionResNet(BasicBlock, [1, 1], widths=(4, 8), stem=4))
    with pytest.raises(ValueError, match="layer2.0.bn1.running_var: shape"):
        torchvision_resnet.convert({**state, "layer2.0.bn1.running_var": np.ones(5, np.float32)}, SPEC)
    with pytest.raises(ValueError, match="layer2.0.conv2.weight: shape"):
        torchvision_resnet.convert({**state, "layer2.0.conv2.weight": np.ones((8, 8, 5, 5), np.float32)}, SPEC)
    with pytest.raises(ValueError, match="'layer2.0.downsample.1.weight'"):
        torchvision_resnet.convert({k: v for k, v in state.items() if k != "layer2.0.downsample.1.weight"}, SPEC)
    with pytest.raises(ValueError, match=r"does not use: \['layer1.0.conv1.bias'\]"):
        torchvision_resnet.convert({**state, "layer1.0.conv1.bias": np.zeros(4, np.float32)}, SPEC)
    with pytest.raises(ValueError, match="'fc.weight'"):
        torchvision_resnet.convert({k: v for k, v in state.items() if not k.startswith("fc.")}, SPEC)
    with pytest.raises(ValueError, match="3 input channels, the input spec has 1"):
        torchvision_resnet.convert(state, GRAY_SPEC)


def test_a_converted_resnet_runs_through_the_engine():
    torch.manual_seed(0)
    net = _randomise_batch_norms(
        TorchvisionResNet(BasicBlock, [1, 1, 1], widths=(8, 16, 32), stem=8, in_channels=1), GRAY_SPEC
    )
    model = torchvision_resnet.convert(_state(net), GRAY_SPEC).model
    images = _images(GRAY_SPEC, n=5)
    direct = np.asarray(torch.softmax(torch.from_numpy(_torch_logits(net, images, GRAY_SPEC)), -1))
    plain = np.asarray(jax.nn.softmax(model(preprocess(images, GRAY_SPEC)), axis=-1))
    through_engine = engine.model_probabilities(model, GRAY_SPEC, images, batch_size=4)  # two batches, one padded
    np.testing.assert_allclose(through_engine, plain, atol=1e-5, rtol=0)
    np.testing.assert_allclose(through_engine, direct, atol=1e-5, rtol=0)
