"""Reading checkpoint files: safetensors, PyTorch state_dicts (tensors only), Hugging Face model directories."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

__all__ = ["file_digest", "read_checkpoint", "read_tensors", "weights_file"]


def read_tensors(path: str | Path) -> dict[str, np.ndarray]:
    """Name -> array from a .safetensors file or a PyTorch state_dict file (.pt, .pth, .bin)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(path)
    if path.suffix in (".pt", ".pth", ".bin"):
        try:
            import torch
        except ImportError:
            raise ImportError(f"reading {path} needs PyTorch (pip install torch); or save it as safetensors") from None
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)  # tensors only, never code
        except Exception as error:
            raise ValueError(f"{path} is not a plain state_dict of tensors ({type(error).__name__}: {error})") from None
        if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
            loaded = loaded["state_dict"]
        if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
            raise ValueError(f"{path} holds {type(loaded).__name__}, not a state_dict (a dict of tensors)")
        return {k: v.detach().float().numpy() for k, v in loaded.items()}
    raise ValueError(f"{path}: unknown checkpoint type {path.suffix!r}; use .safetensors, .pt, .pth or .bin")


_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def weights_file(path: str | Path) -> Path:
    """The weights of a checkpoint: the file itself, or a Hugging Face directory's weights file."""
    path = Path(path)
    if not path.is_dir():
        return path
    for name in _WEIGHT_FILES:
        if (path / name).is_file():
            return path / name
    raise FileNotFoundError(f"{path} is a directory without {' or '.join(_WEIGHT_FILES)}")


def read_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict | None]:
    """(tensors, config): a state_dict file has no config; a Hugging Face directory has its config.json."""
    path = Path(path)
    if not path.is_dir():
        return read_tensors(path), None
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is a directory without config.json; is it a Hugging Face model directory?")
    return read_tensors(weights_file(path)), json.loads((path / "config.json").read_text())


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
