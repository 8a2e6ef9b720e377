"""Generating hubs of thousands of real experts (`configs.scale_hub`): experts trained in vmapped batches.

Most experts are linear heads over a few shared backbones (trained on the pool, or a pretrained
model's frozen features, `ScaleConfig.pretrained`). Each backbone's
features of the expert pool are computed once; heads then train
`heads_per_program` at a time in one compiled program: parameters stacked on a
leading model axis, every model widened to the widest class count with the
engine's masked bias (a padded head's probability, and so its gradients and
Adam updates, are exactly 0), and every model's data drawn to the same
steps x batch size. Stand-alone experts on pixels train the same way, one batch
per architecture. Experts on corrupted data read one corrupted copy of the pool
per corruption (or its features). Each trained model is cut back to its own classes and added
to the hub like any other. Training reads the expert pool only.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from mll_jax import engine, nets
from mll_jax.configs.scale_hub import ScaleConfig, expert_specs, pretrained_backbone
from mll_jax.configs.specs import ExpertSpec
from mll_jax.data import datasets
from mll_jax.data import store as store_lib
from mll_jax.data.corrupt import corrupt
from mll_jax.data.preprocess import spec_key
from mll_jax.engine.forward import MASKED
from mll_jax.hub import Hub
from mll_jax.zoo import experts, pretrained, train

__all__ = [
    "Source",
    "batches",
    "build",
    "class_groups",
    "fit",
    "init",
    "log",
    "provenance",
    "schedule",
    "source",
    "unstack",
]

log = logging.getLogger(__name__)


def schedule(spec: ExpertSpec, labels: np.ndarray, steps: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The (pool indices, head targets) [steps, batch_size] that `spec` trains on, step by step.

    Its items (`experts.training_indices`) are taken in epochs, each a fresh permutation, cut
    at steps x batch_size: every expert takes the same number of steps, whatever its data.
    """
    index, targets = experts.training_indices(spec, labels)
    rng = np.random.default_rng([spec.seed, 1])  # a stream apart from the one that drew the items
    epochs = -(-steps * batch_size // len(index))
    order = np.argsort(rng.random((epochs, len(index))), axis=1).ravel()[: steps * batch_size]
    return index[order].reshape(steps, batch_size), targets[order].reshape(steps, batch_size)


def init(arch: str, config: dict, specs: list[ExpertSpec], width: int) -> nnx.State:
    """Stacked initial parameters [M, ...] of `specs` (all `arch`), heads widened to `width`, the extra ones masked."""
    # The seed as a key: inside vmap it is traced; nnx.Rngs(key(s)) draws what nnx.Rngs(s) does.
    keys = jax.vmap(jax.random.key)(jnp.asarray([s.seed for s in specs], jnp.uint32))
    params = jax.vmap(lambda key: nnx.state(nets.build(arch, config, width, key), nnx.Param))(keys)
    real = np.arange(width) < np.asarray([len(s.classes) for s in specs])[:, None]
    params["head"]["bias"][...] = jnp.where(real, params["head"]["bias"][...], MASKED)
    return params


@functools.partial(jax.jit, static_argnames=("graphdef", "optimizer", "spec_items"))
def _fit(graphdef, optimizer, spec_items, params, rest, inputs, source, index, targets):
    """Stacked params [M, ...] after one step per row of index / targets [steps, M, B], and the loss [steps, M].

    Model m reads inputs[source[m]] (inputs: [K, N, ...], one row per (backbone, corruption)'s features, or pixels).
    """
    spec = None if spec_items is None else dict(spec_items)
    loss = jax.vmap(jax.value_and_grad(lambda p, x, y: train.loss(graphdef, p, rest, x, y, spec)))

    def step(carry, batch):
        params, opt_state = carry
        idx, y = batch
        losses, grads = loss(params, inputs[source[:, None], idx], y)
        # Adam is elementwise and every model steps together: one Adam over the stack is one per model.
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), losses

    (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), (index, targets))
    return params, losses


Source = tuple[str | None, str | None]  # (backbone or None for pixels, corruption or None)


def source(spec: ExpertSpec) -> Source:
    return spec.backbone, spec.corruption


def fit(
    specs: list[ExpertSpec],
    inputs: dict[Source, np.ndarray],
    labels: np.ndarray,
    input_spec: dict | None,
    scale: ScaleConfig,
) -> tuple[dict, np.ndarray]:
    """Train `specs` (one architecture) together; expert s reads `inputs[source(s)]` (pool features, or with
    backbone None the pool images, corrupted as it says) and `labels` (the pool's).

    Returns their stacked parameters as numpy ([M, ...], heads `scale.num_classes[1]` wide) and each
    one's mean loss over its last tenth of steps. `input_spec` None: inputs are features, used as they are.
    """
    arch, config, width = specs[0].arch, specs[0].config, scale.num_classes[1]
    sources = list(dict.fromkeys(source(s) for s in specs))
    plans = [schedule(s, labels, scale.steps, scale.batch_size) for s in specs]
    index = np.stack([p[0] for p in plans], axis=1).astype(np.int32)  # [steps, M, B]: scan runs over steps
    targets = np.stack([p[1] for p in plans], axis=1).astype(np.int32)
    graphdef, _, rest = nnx.split(nets.abstract(arch, config, width), nnx.Param, ...)
    if jax.tree.leaves(rest):  # batch statistics would need stacking and updating too
        raise ValueError(f"{arch} {config} has state besides parameters; batched training takes only nnx.Param")
    params, losses = _fit(
        graphdef,
        optax.adam(scale.learning_rate),
        None if input_spec is None else spec_key(input_spec),
        init(arch, config, specs, width),
        rest,
        jnp.stack([jnp.asarray(inputs[b]) for b in sources]),
        jnp.asarray([sources.index(source(s)) for s in specs], jnp.int32),
        jnp.asarray(index),
        jnp.asarray(targets),
    )
    final = np.asarray(losses[-max(1, scale.steps // 10) :].mean(0))
    return jax.device_get(nnx.to_pure_dict(params)), final


def unstack(arch: str, config: dict, params: dict, m: int, num_heads: int) -> nnx.Module:
    """Model `m` of stacked `params` as a model of its own `num_heads` heads (the padded ones cut off)."""
    graphdef, state = nnx.split(nets.abstract(arch, config, num_heads))  # traced once per structure
    own = jax.tree.map(lambda x: x[m], params)
    own["head"] = jax.tree.map(lambda x: x[..., :num_heads], own["head"])
    own = jax.tree.map(jnp.array, own)  # copies: a model must not keep its whole batch's arrays alive
    nnx.replace_by_pure_dict(state, own)
    return nnx.merge(graphdef, state)


def provenance(spec: ExpertSpec, scale: ScaleConfig, final_loss: float) -> dict:
    """`experts.provenance` with the batched recipe (steps, not epochs) and the backbone."""
    recorded = {k: v for k, v in experts.provenance(spec).items() if k != "epochs" and (k != "swap_heads" or v)}
    recipe = {"steps": scale.steps, "batch_size": scale.batch_size, "learning_rate": scale.learning_rate}
    return recorded | recipe | {"backbone": spec.backbone, "final_loss": round(final_loss, 4), "generator": "scale_hub"}


def batches(specs: list[ExpertSpec], scale: ScaleConfig) -> Iterator[tuple[list[ExpertSpec], int]]:
    """`specs` in training batches of one architecture (heads over any backbones of one width share one),
    each with the program size of its kind.

    Batches of a kind are as equal as can be (rather than full ones and a remainder); the
    short ones are padded to the size with copies of their last expert (trained, then
    dropped), so a kind is one compiled program and little of it is padding.
    """
    kind = lambda s: (s.backbone is None, s.arch, json.dumps(s.config, sort_keys=True))  # noqa: E731
    for _, group in itertools.groupby(sorted(specs, key=kind), key=kind):
        group = list(group)
        cap = scale.models_per_program if group[0].backbone is None else scale.heads_per_program
        size = -(-len(group) // -(-len(group) // cap))
        for i in range(0, len(group), size):
            yield group[i : i + size], size


def class_groups(hub: Hub, config: ScaleConfig, pool: datasets.Dataset) -> list[list[int]]:
    """Per domain of `config` (a WordNet node), the pool classes under it that the pool has images of."""
    have = set(np.unique(pool.labels).tolist())
    index = {s: i for i, s in enumerate(pool.synsets)}
    groups = []
    for root in config.domains:
        if root not in hub.sdag.graph:
            raise ValueError(f"domain {root!r} is not a node of the hub's SDAG; name a hypernym of its store concepts")
        groups.append(sorted(index[c] for c in hub.sdag.concepts_under(root) if index.get(c) in have))
        if not groups[-1]:
            raise ValueError(f"domain {root!r} has no expert-pool images; drop it from the config's domains")
    return groups


def build(
    path: str | os.PathLike,
    config: ScaleConfig,
    base: str | os.PathLike | None = None,
    progress: bool = True,
    backbones_from: Hub | None = None,
) -> Hub:
    """Create (or complete) the generated hub at `path`; with `base`, it starts as a copy of that hub directory
    (e.g. the labelled demo hub, whose general model and experts are then kept). Backbones it needs that
    `backbones_from` holds are copied from there rather than trained.

    Trains the backbones it lacks, then the experts it lacks in vmapped batches, and adds them;
    labelling is left to `labeling.label`. A hub made without `base` has no general model
    (`zoo.general.add_to_hub` adds one).
    """
    path = Path(path)
    if base is not None and not path.exists():
        Hub.open(base).copy(path)
    try:
        hub = Hub.open(path)
    except FileNotFoundError:
        hub = Hub.create(path)
    pool = store_lib.expert_pool(hub.store_spec)
    have = set(hub.entries)
    todo = [s for s in expert_specs(config, class_groups(hub, config, pool)) if s.id not in have]
    needed = {s.backbone for s in todo if s.backbone}
    for spec in config.backbones:
        if spec.id not in needed or spec.id in hub.backbones:
            continue
        if backbones_from is not None and spec.id in backbones_from.backbones:
            hub.copy_backbone(backbones_from, spec.id)
        else:
            log.info("hub %s: training backbone %s", hub.path, spec.id)
            experts.add_expert(hub, spec, "backbone", config.input_spec)
    for name in config.pretrained:  # frozen, as shipped: nothing to train
        if pretrained_backbone(name) in needed and pretrained_backbone(name) not in hub.backbones:
            pretrained.add_backbone(hub, name, config.pretrained_side)
    names = [c["name"] for c in pool.classes]
    # The pool, and one corrupted copy of it per corruption in use (drawn once, seed 0); each backbone's features
    # of each of them, once: every head over it trains on rows of these.
    images = {c: corrupt(pool.images, c) for c in sorted({s.corruption for s in todo}, key=str)}
    inputs: dict[Source, np.ndarray] = {}
    for b, c in sorted({source(s) for s in todo}, key=str):
        inputs[b, c] = (
            images[c]
            if b is None
            else engine.model_features(hub.load_backbone(b), hub.backbones[b].input_spec, images[c])
        )
    seen = {b: e.input_spec for b, e in hub.backbones.items()}  # a head sees its images as its backbone does
    log.info("hub %s: %d expert(s) to train", hub.path, len(todo))
    bar = tqdm(total=len(todo), desc="generating experts", disable=not (progress and todo))
    for batch, size in batches(todo, config):
        input_spec = config.input_spec if batch[0].backbone is None else None
        padded = batch + [batch[-1]] * (size - len(batch))
        params, final = fit(padded, inputs, pool.labels, input_spec, config)
        for m, spec in enumerate(batch):
            model = unstack(spec.arch, spec.config, params, m, len(spec.classes))
            heads = experts.declared_heads(spec, names)
            prov = provenance(spec, config, float(final[m]))
            spec_in = seen[spec.backbone] if spec.backbone else config.input_spec
            hub.add(spec.id, model, spec.arch, spec.config, heads, spec_in, "expert", prov, spec.backbone)
            bar.update()
    bar.close()
    return hub
