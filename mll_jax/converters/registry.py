"""The converter registry: name -> `convert(tensors, input_spec, **layout) -> Converted`; adding one to a hub."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mll_jax.converters.files import file_digest, read_checkpoint, weights_file
from mll_jax.converters.tensors import Converted

__all__ = ["CONVERTERS", "add_to_hub", "convert", "register"]

CONVERTERS: dict[str, Callable[..., Converted]] = {}


def register(name: str):
    """Function decorator: `mll-jax convert NAME` runs this converter. A name registered twice is an error."""

    def add(fn):
        if name in CONVERTERS:
            raise ValueError(f"converter {name!r} is already registered (by {CONVERTERS[name].__module__})")
        CONVERTERS[name] = fn
        return fn

    return add


def convert(converter: str, path: str | Path, input_spec: dict, **layout) -> Converted:
    """Convert the checkpoint (file or Hugging Face directory) at `path` with the converter named `converter`."""
    if converter not in CONVERTERS:
        raise ValueError(f"unknown converter {converter!r}; known: {sorted(CONVERTERS)}")
    tensors, config = read_checkpoint(path)
    if config is not None:
        layout = {**layout, "config": config}
    return CONVERTERS[converter](tensors, input_spec=input_spec, **layout)


def add_to_hub(
    hub, model_id: str, converter: str, path: str | Path, heads: list[str] | None, input_spec: dict, **layout
) -> Converted:
    """Convert the checkpoint at `path` with `converter` and add it to `hub` as `model_id`.

    `heads` names the outputs; None takes the names the checkpoint gives (a Hugging Face `id2label`).
    """
    converted = convert(converter, path, input_spec, **layout)
    heads = heads or converted.heads
    if not heads:
        raise ValueError(f"{path} does not name its outputs; pass the class name of each (--heads)")
    provenance = {"converter": converter, "source": str(path), "source_sha256": file_digest(weights_file(path))}
    provenance.update({k: v for k, v in layout.items() if k != "config"})
    hub.add(model_id, converted.model, converted.arch, converted.config, heads, input_spec, provenance=provenance)
    return converted
