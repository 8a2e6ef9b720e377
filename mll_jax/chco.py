"""Classification head combination optimisation (DESIGN 3.2): the math, on padded arrays.

Problem arrays (one task, padded; a leading task axis is added by vmap):
  scores      S  [N, K, C]  candidate scores s_c(x) = log sum_{j in J_c} p_m(x)_j
  cand_mask      [K, C]     real candidates
  cand_model     [K, C]     index of each candidate's model in 0..M-1
  labels      y  [N]        class of each node sample
  sample_mask    [N]        1 for fit samples, 0 for padding (a second mask validates)
  model_cost     [M]        relative cost of running each model
Parameters: combination logits a [K, C], log-temperatures t [M], biases b [K].
  w_k    = masked softmax(a_k)
  z_k(x) = sum_c w_kc * s_c(x) * exp(-t_m(c)) + b_k
  loss   = CE(z, y) + l_H * mean_k H(w_k)
           + l_cost * sum_m cost_m * (1 - prod_{(k,c) in m} (1 - w_kc)) + l_t * |t|^2
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

NEG = -1e9
POLISH_BATCH = 64  # swaps refitted at once
POLISH_SWAPS = 64  # most swaps per polish round: each costs a refit, and K x C grows fast


@dataclasses.dataclass(frozen=True)
class Config:
    restarts: int = 4
    steps: int = 100
    refit_steps: int = 50
    learning_rate: float = 0.05
    entropy_weight: float = 0.1
    cost_weight: float = 0.01
    temperature_weight: float = 1e-3
    init_scale: float = 2.0
    top_mass: float | None = None  # None: top-1 candidate per class; else smallest set with this mass
    max_models: int | None = None  # hard cap on the number of distinct models a selection uses
    samples_per_class: int = 200  # node samples per class, half to fit and half to validate
    polish_rounds: int = 2  # rounds of single-swap local search after the restarts (top-1 only)
    polish_width: int | None = 8  # candidates per class a swap may move to (highest weight first); None: all
    patch_every_class: bool = True  # the general model is a candidate for every class, not only uncovered ones
    polish_steps: int = 25  # refit steps when trying a swap; the round's best swap is then refitted in full


def masked_softmax(a: jax.Array, mask: jax.Array) -> jax.Array:
    return jax.nn.softmax(jnp.where(mask, a, NEG), axis=-1) * mask


def logits(w, t, b, problem) -> jax.Array:
    """z [N, K]; padded classes get a very low logit."""
    scale = jnp.exp(-t)[problem["cand_model"]]  # [K, C]
    z = jnp.einsum("kc,nkc->nk", w * scale, problem["scores"]) + b
    return jnp.where(problem["cand_mask"].any(-1), z, NEG)


def cross_entropy(z, problem, weights) -> jax.Array:
    ce = optax.softmax_cross_entropy_with_integer_labels(z, problem["labels"])
    return (ce * weights).sum() / jnp.maximum(weights.sum(), 1.0)


def accuracy(z, problem, weights) -> jax.Array:
    hit = (z.argmax(-1) == problem["labels"]).astype(jnp.float32)
    return (hit * weights).sum() / jnp.maximum(weights.sum(), 1.0)


def model_usage(w, problem) -> jax.Array:
    """[M]: probability that each model is used, 1 - prod over its candidates of (1 - w)."""
    num_models = problem["model_cost"].shape[0]
    onehot = jax.nn.one_hot(problem["cand_model"], num_models) * problem["cand_mask"][..., None]
    log_unused = jnp.einsum("kcm,kc->m", onehot, jnp.log1p(-jnp.clip(w, 0.0, 1.0 - 1e-6)))
    return 1.0 - jnp.exp(log_unused)


def loss(params, problem, config: Config, weights) -> jax.Array:
    w = masked_softmax(params["a"], problem["cand_mask"])
    z = logits(w, params["t"], params["b"], problem)
    class_mask = problem["cand_mask"].any(-1)
    entropy = -(w * jnp.log(jnp.where(w > 0, w, 1.0))).sum(-1)
    mean_entropy = (entropy * class_mask).sum() / jnp.maximum(class_mask.sum(), 1)
    cost = (problem["model_cost"] * model_usage(w, problem)).sum()
    return (
        cross_entropy(z, problem, weights)
        + config.entropy_weight * mean_entropy
        + config.cost_weight * cost
        + config.temperature_weight * (params["t"] ** 2).sum()
    )


def refit_loss(tb, w, problem, config: Config, weights) -> jax.Array:
    z = logits(w, tb["t"], tb["b"], problem)
    return cross_entropy(z, problem, weights) + config.temperature_weight * (tb["t"] ** 2).sum()


def adam_fit(loss_fn, params, steps: int, learning_rate: float):
    optimizer = optax.adam(learning_rate)

    def step(carry, _):
        params, state = carry
        grads = jax.grad(loss_fn)(params)
        updates, state = optimizer.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), None, length=steps)
    return params


def discretise(w: jax.Array, mask: jax.Array, top_mass: float | None) -> jax.Array:
    """Top-1 candidate per class (renormalised weights of the top-mass set if `top_mass`)."""
    if top_mass is None:
        return jax.nn.one_hot(jnp.where(mask, w, -1.0).argmax(-1), w.shape[-1]) * mask
    order = jnp.argsort(-w, axis=-1)
    sorted_w = jnp.take_along_axis(w, order, -1)
    keep_sorted = (jnp.cumsum(sorted_w, -1) - sorted_w) < top_mass
    keep = jnp.zeros_like(w).at[jnp.arange(w.shape[0])[:, None], order].set(keep_sorted) * mask
    kept = w * keep
    return kept / jnp.maximum(kept.sum(-1, keepdims=True), 1e-9)


def limit_models(w: jax.Array, problem: dict, max_models: int) -> jax.Array:
    """bool [M]: the models a selection may use so that it uses at most `max_models`.

    Greedy: while the top-1 selection uses too many models, forbid the used model
    with the least total weight whose loss leaves every class a candidate. Dropping
    can strand the search (two narrow models left, each the last for some class), so
    if it ends above the cap, a greedy set cover (the model covering most uncovered
    classes first, weight breaking ties) is used instead. If that fails too, the cap
    is infeasible and the caller sees more models in use.
    """
    num_models = problem["model_cost"].shape[0]
    onehot = jax.nn.one_hot(problem["cand_model"], num_models) * problem["cand_mask"][..., None]  # [K, C, M]
    real_class = problem["cand_mask"].any(-1)
    usage = jnp.einsum("kcm,kc->m", onehot, w)

    def used_by(allowed):
        """bool [M]: models the top-1 selection uses when only `allowed` models may be chosen."""
        allowed_cands = problem["cand_mask"] & (onehot @ allowed.astype(w.dtype) > 0)
        return jnp.einsum("kcm,kc->m", onehot, discretise(w, allowed_cands, None)) > 0

    def drop_one(_, allowed):
        used = used_by(allowed)
        per_class = (onehot * allowed).sum(1)  # [K, M]: allowed candidates of class k from model m
        left = per_class.sum(-1, keepdims=True) - per_class  # without model m
        removable = ((left > 0) | ~real_class[:, None]).all(0) & used
        score = jnp.where(removable, usage, jnp.inf)
        drop = score.argmin()
        do_drop = (used.sum() > max_models) & jnp.isfinite(score[drop])
        return allowed.at[drop].set(allowed[drop] & ~do_drop)

    covers = onehot.any(1) & real_class[:, None]  # [K, M]

    def cover_one(_, state):
        allowed, covered = state
        gain = (covers & ~covered[:, None]).sum(0) + usage / (usage.sum() + 1.0)
        pick = gain.argmax()
        return allowed.at[pick].set(True), covered | covers[:, pick]

    dropped = jax.lax.fori_loop(0, num_models, drop_one, onehot.any((0, 1)))
    cover, covered = jax.lax.fori_loop(0, max_models, cover_one, (jnp.zeros(num_models, bool), ~real_class))
    use_cover = (used_by(dropped).sum() > max_models) & covered.all()
    return jnp.where(use_cover, cover, dropped)


def refit(problem: dict, w: jax.Array, tb: dict, config: Config) -> dict:
    """Temperatures and biases refitted on the fit half for fixed weights `w`."""
    return adam_fit(
        lambda tb: refit_loss(tb, w, problem, config, problem["fit"]), tb, config.refit_steps, config.learning_rate
    )


def report(problem: dict, w: jax.Array, tb: dict) -> dict:
    """Validation accuracy (overall and per class) and cross-entropy of a discrete selection."""
    K = w.shape[0]
    z = logits(w, tb["t"], tb["b"], problem)
    per_class_weights = jax.nn.one_hot(problem["labels"], K) * problem["val"][:, None]  # [N, K]
    hits = (z.argmax(-1) == problem["labels"]).astype(jnp.float32)[:, None]
    return {
        "val_accuracy": accuracy(z, problem, problem["val"]),
        "val_accuracy_per_class": (hits * per_class_weights).sum(0) / jnp.maximum(per_class_weights.sum(0), 1.0),
        "val_loss": cross_entropy(z, problem, problem["val"]),
    }


def best(results: dict) -> dict:
    """The discrete selection with the best validation accuracy, ties broken by validation loss."""
    winner = jnp.lexsort((results["val_loss"], -results["val_accuracy"]))[0]
    return jax.tree.map(lambda x: x[winner], results)


def restrict(problem: dict, picks: jax.Array) -> dict:
    """The problem with one candidate per class, `picks` [K]: scores become [N, K, 1].

    Refitting a discrete selection then costs C times less than on the full problem.
    """
    column = picks[:, None]
    return {
        **problem,
        "scores": jnp.take_along_axis(problem["scores"], column[None], axis=2),
        "cand_mask": jnp.take_along_axis(problem["cand_mask"], column, axis=1),
        "cand_model": jnp.take_along_axis(problem["cand_model"], column, axis=1),
    }


def solve_picks(problem: dict, picks: jax.Array, tb: dict, config: Config) -> dict:
    """Refit t and b (from `tb`) for one candidate per class and report it; `w` is [K, C] one-hot."""
    one = restrict(problem, picks)
    w = one["cand_mask"].astype(jnp.float32)
    tb = refit(one, w, tb, config)
    C = problem["cand_mask"].shape[1]
    return {"w": jax.nn.one_hot(picks, C) * problem["cand_mask"], **tb, **report(one, w, tb)}


def polish(problem: dict, result: dict, config: Config) -> dict:
    """Local search on the discrete selection.

    Each round tries, for every class, a swap to each of its `polish_width` candidates
    of highest continuous weight (fewer for many classes, at most POLISH_SWAPS in all)
    with a short refit (`polish_steps`, from the current temperatures and biases),
    refits the most promising swap in full, and keeps it if it beats the current
    selection (validation accuracy, then loss). With `max_models`, a swap may only
    move to a model the selection already uses.
    """
    K, C = problem["cand_mask"].shape
    M = problem["model_cost"].shape[0]
    width = max(1, min(config.polish_width or C, C, POLISH_SWAPS // K))
    swap_class = jnp.repeat(jnp.arange(K), width)
    swap_cand = jnp.argsort(-result["continuous_w"], axis=-1)[:, :width].ravel()
    real_class = problem["cand_mask"].any(-1)
    quick = dataclasses.replace(config, refit_steps=config.polish_steps)

    def one_round(_, current):
        picks = current["w"].argmax(-1)
        allowed = jnp.ones(M, bool)
        if config.max_models is not None:
            used = problem["cand_model"][jnp.arange(K), picks]
            allowed = jnp.zeros(M, bool).at[used].max(real_class)
        valid = problem["cand_mask"][swap_class, swap_cand] & allowed[problem["cand_model"][swap_class, swap_cand]]
        swaps = jnp.tile(picks, (K * width, 1)).at[jnp.arange(K * width), swap_class].set(swap_cand)
        tb = {"t": current["t"], "b": current["b"]}
        # in batches, so memory stays bounded for large K x C
        tried = jax.lax.map(lambda p: solve_picks(problem, p, tb, quick), swaps, batch_size=POLISH_BATCH)
        tried["val_accuracy"] = jnp.where(valid, tried["val_accuracy"], -jnp.inf)
        top = best(tried)
        refined = solve_picks(problem, top["w"].argmax(-1), {"t": top["t"], "b": top["b"]}, config)
        refined["val_accuracy"] = jnp.where(jnp.isfinite(top["val_accuracy"]), refined["val_accuracy"], -jnp.inf)
        return best(jax.tree.map(lambda a, b: jnp.stack([a, b]), current, refined))

    keys = ("w", "t", "b", "val_accuracy", "val_accuracy_per_class", "val_loss")
    polished = jax.lax.fori_loop(0, config.polish_rounds, one_round, {k: result[k] for k in keys})
    return {**result, **polished}


@functools.partial(jax.jit, static_argnames=("config",))
def solve_fixed(problem: dict, w: jax.Array, config: Config = Config()) -> dict:
    """Refit and report a given discrete selection `w` [K, C] (baselines)."""
    M, K = problem["model_cost"].shape[0], w.shape[0]
    tb = refit(problem, w, {"t": jnp.zeros(M), "b": jnp.zeros(K)}, config)
    return {"w": w, **tb, **report(problem, w, tb)}


@functools.partial(jax.jit, static_argnames=("config",))
def solve(problem: dict, key: jax.Array, config: Config = Config()) -> dict:
    """CHCO on one padded problem.

    Each restart (vmapped) optimises the continuous weights, discretises them and
    refits t and b; the restart whose discrete selection scores best on the
    validation half wins (accuracy, then cross-entropy), and a few rounds of
    single-swap local search polish it (top-1 selections). `problem` also holds
    `fit` and `val` sample weights [N]. Returns discrete weights w [K, C], t [M],
    b [K] and validation accuracy overall and per class.
    """
    K, C = problem["cand_mask"].shape
    M = problem["model_cost"].shape[0]

    def one_restart(key):
        init = {
            "a": config.init_scale * jax.random.normal(key, (K, C)),
            "t": jnp.zeros(M),
            "b": jnp.zeros(K),
        }
        params = adam_fit(lambda p: loss(p, problem, config, problem["fit"]), init, config.steps, config.learning_rate)
        continuous = masked_softmax(params["a"], problem["cand_mask"])
        mask = problem["cand_mask"]
        if config.max_models is not None:
            allowed = limit_models(continuous, problem, config.max_models)
            mask = mask & allowed[problem["cand_model"]]
        w = discretise(jnp.where(mask, continuous, 0.0), mask, config.top_mass)
        tb = {"t": params["t"], "b": params["b"]}
        if config.top_mass is None:
            return {"continuous_w": continuous, **solve_picks(problem, w.argmax(-1), tb, config)}
        tb = refit(problem, w, tb, config)
        return {"w": w, "continuous_w": continuous, **tb, **report(problem, w, tb)}

    winner = best(jax.vmap(one_restart)(jax.random.split(key, config.restarts)))
    return polish(problem, winner, config) if config.top_mass is None else winner


@functools.partial(jax.jit, static_argnames=("config",))
def brute_force(problem: dict, picks: jax.Array, config: Config = Config()) -> dict:
    """Every discrete selection in `picks` [P, K] (one candidate index per class), refitted
    and scored on the validation half; returns the best by validation accuracy, then loss."""
    K = problem["cand_mask"].shape[0]
    M = problem["model_cost"].shape[0]
    picks = jnp.pad(picks, ((0, 0), (0, K - picks.shape[1])))  # padded classes have no candidate to pick
    zeros = {"t": jnp.zeros(M), "b": jnp.zeros(K)}
    return best(jax.vmap(lambda pick: solve_picks(problem, pick, zeros, config))(picks))
