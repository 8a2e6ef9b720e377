"""Classification head combination optimisation (method.md §3.3): the math, on padded arrays.

A `Problem` (one task, padded; a leading task axis is added by vmap) holds two `Half`s
of node samples, `fit` and `val`, each (scores S [N, K, C], labels y [N], weight [N])
(S: candidate scores s_c(x) = log sum_{j in J_c} p_m(x)_j, `candidate_scores`; weight 0 pads), and
  cand_mask  [K, C]  real candidates
  cand_model [K, C]  index of each candidate's model in 0..M-1
  model_cost [M]     relative cost of running each model
The relaxation: combination logits a [K, C], log-temperatures t [M], biases b [K],
  w_k    = masked softmax(a_k)
  z_k(x) = sum_c w_kc * s_c(x) * exp(-t_m(c)) + b_k
  loss   = CE(z, y) + l_H * mean_k H(w_k)
           + l_cost * sum_m cost_m * (1 - prod_{(k,c) in m} (1 - w_kc)) + l_t * |t|^2

A discrete selection (one candidate per class) is scored by calibrating it on the fit
half: with beta = exp(-t), the cross-entropy is convex in (beta, b), and a damped
Newton method reaches its optimum in a few steps, so a selection gets
the same temperatures, biases and validation accuracy however it was found (search,
brute force, baselines).

`solve` runs `restarts` local searches, vmapped: the first starts from the
relaxation's top-1 selection, the others from random selections. A round of search
screens every single-class swap by refitting only the swapped class against the
others' fixed logits (a two-parameter logistic regression per swap, all K x C of them
as one array program), calibrates the `search_top` most promising swaps in full, and
keeps the best if it beats the current selection on validation accuracy, then loss.
The best restart wins.

Head combination (`heads_per_class` > 1): from the winner, a sparse mixture
z_k(x) = sum_c beta_kc * s_c(x) + b_k with beta >= 0 (convex in beta and b) is fitted on
the fit half with an L1 penalty, each class keeps its `heads_per_class` largest
weights, and the mixture is refitted on them; it replaces the top-1 selection only if
it beats it on validation accuracy, then loss.

Pooling (`combination` "pool"): every real candidate of a class with weight 1 / (its
class's candidates), t = 0, b = 0, so z_k(x) = mean_c s_c(x); nothing is fitted, and
the validation half only reports it. With `pool_general_share` g, in a class that both
the general model and experts serve the general model weighs g and the experts share
1 - g equally. With g "measured", one g per task: the general model's accuracy alone on
the node samples (both halves) over the sum of its and the experts' (each in the classes
both serve), so a general model that knows little of the task's pictures weighs little.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from mll_jax.configs.selection import SolverConfig

__all__ = [
    "EPS",
    "Half",
    "Problem",
    "Result",
    "brute_force",
    "candidate_scores",
    "halves",
    "masked_softmax",
    "model_usage",
    "solve",
    "solve_fixed",
]

_NEG = -1e9
_MIN_BETA = 1e-3  # inverse temperatures stay positive: a head's score never counts for other classes
EPS = 1e-6  # keeps a candidate's log score finite where its heads give probability 0


class Half(NamedTuple):
    """Node samples of one half: scores [N, K, C] (`samples_last`: [K, C, N]), labels [N], weight [N] (0 pads)."""

    scores: jax.Array
    labels: jax.Array
    weight: jax.Array


class Problem(NamedTuple):
    """One task's CHCO problem: both halves, real candidates [K, C], their models [K, C], model costs [M], and
    which candidates are the hub's general model [K, C] (None: unknown; only the pool reads it)."""

    fit: Half
    val: Half
    cand_mask: jax.Array
    cand_model: jax.Array
    model_cost: jax.Array
    cand_general: jax.Array | None = None


class _Report(NamedTuple):
    """A selection scored on the validation half."""

    val_accuracy: jax.Array
    val_accuracy_per_class: jax.Array  # [K]
    val_loss: jax.Array


class Result(NamedTuple):
    """A discrete selection: weights w [K, C], log-temperatures t [M], biases b [K], its validation report, and
    (from `solve`) the relaxation's continuous weights."""

    w: jax.Array
    t: jax.Array
    b: jax.Array
    val_accuracy: jax.Array
    val_accuracy_per_class: jax.Array
    val_loss: jax.Array
    continuous_w: jax.Array | None = None


class _Evaluated(NamedTuple):
    """A calibrated selection of one candidate per class, with both halves' logits (for screening swaps)."""

    picks: jax.Array  # [K]
    w: jax.Array
    t: jax.Array
    b: jax.Array
    beta: jax.Array  # [K], per class
    z_fit: jax.Array  # [K, N]
    z_val: jax.Array
    val_accuracy: jax.Array
    val_accuracy_per_class: jax.Array
    val_loss: jax.Array


def candidate_scores(summed: jax.Array) -> jax.Array:
    """s_c(x) = log of the summed probabilities of a candidate's heads (method.md §3.2)."""
    return jnp.log(summed + EPS)


def _normal_grid(key: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """Standard normals [K, C] where entry (k, c) depends on (key, k, c) alone, so a task draws the same
    numbers in any padded bucket and its answer does not depend on the bucket policy."""
    rows, cols = jnp.meshgrid(jnp.arange(shape[0]), jnp.arange(shape[1]), indexing="ij")
    draw = lambda k, c: jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, k), c))  # noqa: E731
    return jax.vmap(jax.vmap(draw))(rows, cols)


def masked_softmax(a: jax.Array, mask: jax.Array) -> jax.Array:
    return jax.nn.softmax(jnp.where(mask, a, _NEG), axis=-1) * mask


def halves(scores, labels, in_fit) -> tuple[Half, Half]:
    """(fit, val) from scores [N, K, C] and labels [N] of samples marked by `in_fit` [N]
    (problems built by hand; `selection.problems` builds them from node samples)."""
    scores, labels, in_fit = (jnp.asarray(x) for x in (scores, labels, in_fit))
    return tuple(Half(scores[mask], labels[mask], jnp.ones(int(mask.sum()))) for mask in (in_fit, ~in_fit))


def _samples_last(problem: Problem) -> Problem:
    """The problem with scores [K, C, N]: reductions over samples then run along the fastest axis.

    Every function below takes scores in this layout and returns logits z [K, N].
    """
    fit, val = (h._replace(scores=jnp.moveaxis(h.scores, 0, -1)) for h in (problem.fit, problem.val))
    return problem._replace(fit=fit, val=val)


def _logits(w, t, b, problem: Problem, half: Half) -> jax.Array:
    """z [K, N] of a weighted selection `w` [K, C] on one half; padded classes get a very low logit."""
    scale = jnp.exp(-t)[problem.cand_model]  # [K, C]
    z = jnp.einsum("kc,kcn->kn", w * scale, half.scores) + b[:, None]
    return jnp.where(problem.cand_mask.any(-1)[:, None], z, _NEG)


def _weighted_mean(values: jax.Array, weight: jax.Array) -> jax.Array:
    return (values * weight).sum() / jnp.maximum(weight.sum(), 1.0)


def _label_logit(z: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.take_along_axis(z, labels[None], 0)[0]


def _cross_entropy(z: jax.Array, half: Half) -> jax.Array:
    return _weighted_mean(jax.nn.logsumexp(z, 0) - _label_logit(z, half.labels), half.weight)


def _accuracy(z: jax.Array, half: Half) -> jax.Array:
    return _weighted_mean((z.argmax(0) == half.labels).astype(jnp.float32), half.weight)


def model_usage(w, problem) -> jax.Array:
    """[M]: probability that each model is used, 1 - prod over its candidates of (1 - w)."""
    num_models = problem.model_cost.shape[0]
    onehot = jax.nn.one_hot(problem.cand_model, num_models) * problem.cand_mask[..., None]
    log_unused = jnp.einsum("kcm,kc->m", onehot, jnp.log1p(-jnp.clip(w, 0.0, 1.0 - 1e-6)))
    return 1.0 - jnp.exp(log_unused)


def _loss(params, problem, config: SolverConfig) -> jax.Array:
    """The relaxation's loss on the fit half."""
    w = masked_softmax(params["a"], problem.cand_mask)
    z = _logits(w, params["t"], params["b"], problem, problem.fit)
    class_mask = problem.cand_mask.any(-1)
    entropy = -(w * jnp.log(jnp.where(w > 0, w, 1.0))).sum(-1)
    mean_entropy = (entropy * class_mask).sum() / jnp.maximum(class_mask.sum(), 1)
    cost = (problem.model_cost * model_usage(w, problem)).sum()
    return (
        _cross_entropy(z, problem.fit)
        + config.entropy_weight * mean_entropy
        + config.cost_weight * cost
        + config.temperature_weight * (params["t"] ** 2).sum()
    )


def _adam_fit(loss_fn, params, steps: int, learning_rate: float, project=lambda p: p):
    """Adam on `loss_fn` from `params`; `project` maps each iterate back to the feasible set."""
    import optax  # here, not at the top: a process that loads its stored programs never traces, nor needs optax

    optimizer = optax.adam(learning_rate)

    def step(carry, _):
        params, state = carry
        grads = jax.grad(loss_fn)(params)
        updates, state = optimizer.update(grads, state, params)
        return (project(optax.apply_updates(params, updates)), state), None

    (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), None, length=steps)
    return params


def _top1(w: jax.Array, mask: jax.Array) -> jax.Array:
    """One-hot [K, C] of the largest real weight per class."""
    return jax.nn.one_hot(jnp.where(mask, w, -1.0).argmax(-1), w.shape[-1]) * mask


def _limit_models(w: jax.Array, problem: Problem, max_models: int) -> jax.Array:
    """bool [M]: the models a selection may use so that it uses at most `max_models`.

    Greedy: while the top-1 selection uses too many models, forbid the used model
    with the least total weight whose loss leaves every class a candidate. Dropping
    can strand the search (two narrow models left, each the last for some class), so
    if it ends above the cap, a greedy set cover (the model covering most uncovered
    classes first, weight breaking ties) is used instead. If that fails too, the cap
    is infeasible and the caller sees more models in use.
    """
    num_models = problem.model_cost.shape[0]
    onehot = jax.nn.one_hot(problem.cand_model, num_models) * problem.cand_mask[..., None]  # [K, C, M]
    real_class = problem.cand_mask.any(-1)
    usage = jnp.einsum("kcm,kc->m", onehot, w)

    def used_by(allowed):
        """bool [M]: models the top-1 selection uses when only `allowed` models may be chosen."""
        allowed_cands = problem.cand_mask & (onehot @ allowed.astype(w.dtype) > 0)
        return jnp.einsum("kcm,kc->m", onehot, _top1(w, allowed_cands)) > 0

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


def _relax(problem: Problem, key: jax.Array, config: SolverConfig) -> jax.Array:
    """Continuous weights w [K, C]: the relaxation (Adam on `loss`) from a random start."""
    K, C = problem.cand_mask.shape
    M = problem.model_cost.shape[0]
    init = {"a": config.init_scale * _normal_grid(key, (K, C)), "t": jnp.zeros(M), "b": jnp.zeros(K)}
    params = _adam_fit(lambda p: _loss(p, problem, config), init, config.steps, config.learning_rate)
    return masked_softmax(params["a"], problem.cand_mask)


def _report(problem: Problem, z: jax.Array) -> _Report:
    """Validation accuracy (overall and per class) and cross-entropy of validation logits z [K, N]."""
    val = problem.val
    per_class_weights = jax.nn.one_hot(val.labels, z.shape[0]) * val.weight[:, None]  # [N, K]
    hits = (z.argmax(0) == val.labels).astype(jnp.float32)[:, None]
    return _Report(
        val_accuracy=_accuracy(z, val),
        val_accuracy_per_class=(hits * per_class_weights).sum(0) / jnp.maximum(per_class_weights.sum(0), 1.0),
        val_loss=_cross_entropy(z, val),
    )


def _best(results: Result | _Evaluated) -> Result | _Evaluated:
    """The selection with the best validation accuracy, ties broken by validation loss (over a leading axis)."""
    winner = jnp.lexsort((results.val_loss, -results.val_accuracy))[0]
    return jax.tree.map(lambda x: x[winner], results)


def _better(a: _Evaluated, b: _Evaluated) -> jax.Array:
    return (a.val_accuracy > b.val_accuracy) | ((a.val_accuracy == b.val_accuracy) & (a.val_loss < b.val_loss))


def _columns(problem: Problem, picks: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Model [K] and realness [K] of one candidate per class, `picks` [K]."""
    column = picks[:, None]
    model = jnp.take_along_axis(problem.cand_model, column, axis=1)[:, 0]
    return model, jnp.take_along_axis(problem.cand_mask, column, axis=1)[:, 0]


def _picked(half: Half, picks: jax.Array) -> jax.Array:
    """Scores [K, N] of one candidate per class."""
    return jnp.take_along_axis(half.scores, picks[:, None, None], axis=1)[:, 0]


def _ties(model: jax.Array, real: jax.Array) -> jax.Array:
    """[K, K] one-hot: class k takes its temperature from the first class using the same model."""
    K = model.shape[0]
    same = (model[:, None] == model[None, :]) & real[None, :]
    return jax.nn.one_hot(jnp.where(real, same.argmax(1), jnp.arange(K)), K)


def _calibrated_logits(theta: dict, scores: jax.Array, tie: jax.Array, real: jax.Array) -> jax.Array:
    """z [K, N] = beta_k * s_k + b_k, with beta shared by the classes of one model."""
    return jnp.where(real[:, None], (tie @ theta["beta"])[:, None] * scores + theta["b"][:, None], _NEG)


def _calibrate(scores, tie, real, half: Half, start: dict, steps: int, config: SolverConfig) -> dict:
    """Inverse temperatures `beta` [K] (per tied class) and biases `b` [K] minimising the
    half's cross-entropy + l_t |beta - 1|^2 + l_b |b|^2, by Levenberg-Marquardt
    from `start`. Gradient and Hessian are closed-form sums of [K, K] products."""
    K = scores.shape[0]
    weight = half.weight / jnp.maximum(half.weight.sum(), 1.0)
    target = jax.nn.one_hot(half.labels, K, axis=0) * weight
    ridge = jnp.concatenate([jnp.full(K, config.temperature_weight), jnp.full(K, config.bias_weight)])

    def offset(theta):
        return jnp.concatenate([theta["beta"] - 1.0, theta["b"]])

    def value_gradient_hessian(theta):
        z = _calibrated_logits(theta, scores, tie, real)
        log_norm = jax.nn.logsumexp(z, 0)
        value = (weight * log_norm).sum() - (z * target).sum() + (ridge * offset(theta) ** 2).sum()
        p = jnp.exp(z - log_norm)
        ps = p * scores
        pw, psw = p * weight, ps * weight
        residual = pw - target
        # sum_n w_n (diag p - p p^T), with the scores on neither, one or both sides
        h_bb = jnp.diag(pw.sum(1)) - p @ pw.T
        h_sb = jnp.diag(psw.sum(1)) - ps @ pw.T
        h_ss = jnp.diag((psw * scores).sum(1)) - ps @ psw.T
        grad = jnp.concatenate([tie.T @ (residual * scores).sum(1), residual.sum(1)]) + 2 * ridge * offset(theta)
        hess = jnp.block([[tie.T @ h_ss @ tie, tie.T @ h_sb], [h_sb.T @ tie, h_bb]]) + jnp.diag(2 * ridge)
        return value, grad, hess

    def step(i, state):
        # the trial point's value, gradient and Hessian come from one pass; a rejected trial keeps the old ones.
        # Step 0 only evaluates the start (one copy of that pass in the program, not two).
        theta, damping, current = state
        _, grad, hess = current
        delta = jnp.linalg.solve(hess + damping * jnp.diag(jnp.diag(hess)), grad)
        first = i == 0
        trial = jax.tree.map(
            lambda start, moved: jnp.where(first, start, moved),
            theta,
            {"beta": jnp.maximum(theta["beta"] - delta[:K], _MIN_BETA), "b": theta["b"] - delta[K:]},
        )
        at_trial = value_gradient_hessian(trial)
        accept = first | (at_trial[0] < current[0])
        keep = functools.partial(jax.tree.map, lambda new, old: jnp.where(accept, new, old))
        damping = jnp.where(first, damping, jnp.where(accept, damping / 3, damping * 4))
        return keep(trial, theta), damping, keep(at_trial, current)

    unknown = (jnp.float32(jnp.inf), jnp.zeros(2 * K), jnp.eye(2 * K))  # replaced by step 0
    theta, _, _ = jax.lax.fori_loop(0, steps + 1, step, (start, jnp.float32(1e-2), unknown))
    return theta


def _evaluate(problem: Problem, picks: jax.Array, config: SolverConfig, start: dict | None = None) -> _Evaluated:
    """Calibrate one candidate per class (`picks` [K]) on the fit half, report it on the validation half.

    From scratch (beta = 1, b = 0; `calibration_steps`) unless `start` is given
    (`swap_steps`). Keeps both halves' logits for screening swaps.
    """
    model, real = _columns(problem, picks)
    tie = _ties(model, real)
    K, C = problem.cand_mask.shape
    steps = config.calibration_steps if start is None else config.swap_steps
    start = {"beta": jnp.ones(K), "b": jnp.zeros(K)} if start is None else start
    theta = _calibrate(_picked(problem.fit, picks), tie, real, problem.fit, start, steps, config)
    z_val = _calibrated_logits(theta, _picked(problem.val, picks), tie, real)
    beta = tie @ theta["beta"]  # per class
    M = problem.model_cost.shape[0]
    return _Evaluated(
        picks=picks,
        w=jax.nn.one_hot(picks, C) * problem.cand_mask,
        t=jnp.zeros(M).at[jnp.where(real, model, M)].set(-jnp.log(beta), mode="drop"),
        b=theta["b"],
        beta=beta,
        z_fit=_calibrated_logits(theta, _picked(problem.fit, picks), tie, real),
        z_val=z_val,
        **_report(problem, z_val)._asdict(),
    )


def _leave_one_out(z: jax.Array, labels: jax.Array) -> dict:
    """Per class k and sample n, over the classes other than k: logsumexp, max, whether the
    label is their argmax, all [K, 1, N]; and the label's logit [1, 1, N]."""
    K = z.shape[0]
    others = jnp.where(jnp.eye(K, dtype=bool)[:, :, None], _NEG, z[None])  # [K, K, N]: row k without class k
    return {
        "rest": jax.nn.logsumexp(others, 1)[:, None],
        "top": others.max(1)[:, None],
        "label_tops": (others.argmax(1) == labels)[:, None],
        "z_label": _label_logit(z, labels)[None, None],
        "is_k": (jnp.arange(K)[:, None] == labels)[:, None],
    }


def _screen(problem: Problem, current: _Evaluated, config: SolverConfig) -> tuple[jax.Array, jax.Array, dict]:
    """Approximate validation accuracy and loss [K, C] of every single swap (class k to candidate c),
    and each swap's refitted beta and b [K, C].

    The swapped class's beta and b take a few Newton steps (from its current values) on
    the fit half, against the other classes' logits held fixed.
    """
    fit, val = problem.fit, problem.val
    S = fit.scores
    out = _leave_one_out(current.z_fit, fit.labels)
    weight = fit.weight / jnp.maximum(fit.weight.sum(), 1.0)
    ones = jnp.ones(S.shape[:2])
    lam_beta, lam_b = config.temperature_weight, config.bias_weight

    def newton(_, state):
        beta, bias = state
        sig = jax.nn.sigmoid(beta[..., None] * S + bias[..., None] - out["rest"])
        r, h = (sig - out["is_k"]) * weight, sig * (1 - sig) * weight
        g1, g2 = (r * S).sum(-1) + 2 * lam_beta * (beta - 1), r.sum(-1) + 2 * lam_b * bias
        h11, h12, h22 = (h * S * S).sum(-1) + 2 * lam_beta, (h * S).sum(-1), h.sum(-1) + 2 * lam_b
        det = h11 * h22 - h12**2
        return jnp.maximum(beta - (h22 * g1 - h12 * g2) / det, _MIN_BETA), bias - (h11 * g2 - h12 * g1) / det

    start = (current.beta[:, None] * ones, current.b[:, None] * ones)
    beta, bias = jax.lax.fori_loop(0, config.screen_steps, newton, start)
    held = _leave_one_out(current.z_val, val.labels)
    u = beta[..., None] * val.scores + bias[..., None]
    ce = jnp.where(held["is_k"], -u, -held["z_label"]) + jnp.logaddexp(held["rest"], u)
    hit = jnp.where(held["is_k"], u > held["top"], held["label_tops"] & (held["z_label"] > u))
    weight = val.weight / jnp.maximum(val.weight.sum(), 1.0)
    return (hit * weight).sum(-1), (ce * weight).sum(-1), {"beta": beta, "b": bias}


def _allowed_swaps(problem: Problem, picks: jax.Array, max_models: int | None) -> jax.Array:
    """bool [K, C]: real candidates other than the current pick, within `max_models` after the swap."""
    K, C = problem.cand_mask.shape
    allowed = problem.cand_mask & ~jax.nn.one_hot(picks, C, dtype=bool)
    if max_models is None:
        return allowed
    model, real = _columns(problem, picks)
    count = jnp.zeros(problem.model_cost.shape[0], jnp.int32).at[model].add(real)
    target = problem.cand_model  # [K, C]
    after = (count > 0).sum() + (count[target] == 0) - ((count[model] == 1)[:, None] & (target != model[:, None]))
    return allowed & (after <= max_models)


def _search(problem: Problem, start: _Evaluated, config: SolverConfig) -> _Evaluated:
    """Single-swap local search from the evaluated selection `start` (see the module docstring)."""
    K, C = problem.cand_mask.shape
    top = min(config.search_top, K * C)

    def one_round(state):
        current, _, rounds = state
        accuracy, loss, refitted = _screen(problem, current, config)
        allowed = _allowed_swaps(problem, current.picks, config.max_models)
        promise = jnp.where(allowed, accuracy - 1e-4 * loss, -jnp.inf).ravel()  # accuracy, then loss
        _, index = jax.lax.top_k(promise, top)
        k, c = index // C, index % C
        swaps = jnp.tile(current.picks, (top, 1)).at[jnp.arange(top), k].set(c)
        # warm start: the current calibration per class, the swapped class's as screened
        starts = {
            name: jnp.tile(getattr(current, name), (top, 1)).at[jnp.arange(top), k].set(refitted[name][k, c])
            for name in ("beta", "b")
        }
        tried = jax.vmap(lambda picks, start: _evaluate(problem, picks, config, start))(swaps, starts)
        tried = tried._replace(val_accuracy=jnp.where(jnp.isfinite(promise[index]), tried.val_accuracy, -1.0))
        candidate = _best(tried)
        improved = _better(candidate, current)
        current = jax.tree.map(lambda new, old: jnp.where(improved, new, old), candidate, current)
        return current, improved, rounds + 1

    def going(state):
        _, improved, rounds = state
        return improved & (rounds < config.search_rounds)

    final, _, _ = jax.lax.while_loop(going, one_round, (start, jnp.bool_(True), 0))
    return final


def _start_picks(problem: Problem, w: jax.Array, config: SolverConfig) -> jax.Array:
    """Top-1 candidate per class of continuous weights `w`, within `max_models`."""
    mask = problem.cand_mask
    if config.max_models is not None:
        mask = mask & _limit_models(w, problem, config.max_models)[problem.cand_model]
    return jnp.where(mask, w, -1.0).argmax(-1)


def _kept(result: _Evaluated) -> Result:
    """The part of an evaluated selection that leaves the solver."""
    return Result(result.w, result.t, result.b, result.val_accuracy, result.val_accuracy_per_class, result.val_loss)


def _mixture(problem: Problem, start: _Evaluated, config: SolverConfig) -> _Evaluated:
    """Up to `heads_per_class` candidates per class with weights beta >= 0, from the top-1 selection `start`
    (see the module docstring). Within `max_models`, only the models `start` uses may join; otherwise a
    candidate of a model `start` does not use pays `cost_weight` x its model's cost per unit of weight."""
    M = problem.model_cost.shape[0]
    model, real = _columns(problem, start.picks)
    used = jnp.zeros(M, bool).at[jnp.where(real, model, M)].set(True, mode="drop")
    allowed = problem.cand_mask & (used[problem.cand_model] if config.max_models is not None else True)
    penalty = (
        config.mixture_l1
        + jnp.where(used[problem.cand_model], 0.0, config.cost_weight) * problem.model_cost[problem.cand_model]
    )
    real_class = problem.cand_mask.any(-1)[:, None]
    # scores centred on the fit half: a head's weight and its class's bias then do not trade off (Adam drifts
    # along such a valley); the shift returns into b at the end
    weight = problem.fit.weight / jnp.maximum(problem.fit.weight.sum(), 1.0)
    centre = (problem.fit.scores * weight).sum(-1)  # [K, C]

    def logits(params, half):
        z = jnp.einsum("kc,kcn->kn", params["beta"], half.scores - centre[..., None]) + params["b"][:, None]
        return jnp.where(real_class, z, _NEG)

    def fit(params, support):
        def objective(p):
            ridge = config.bias_weight * (p["b"] ** 2).sum()
            return _cross_entropy(logits(p, problem.fit), problem.fit) + (penalty * p["beta"]).sum() + ridge

        def project(p):
            return {"beta": jnp.maximum(p["beta"], 0.0) * support, "b": p["b"]}

        return _adam_fit(objective, params, config.mixture_steps, config.mixture_learning_rate, project)

    def fit_and_keep(_, state):
        """A fit on `support`, then each class's heads_per_class largest positive weights become the support
        (the start's pick stays eligible). Two of these, as one loop: one copy of the fit in the program."""
        params, support = state
        params = fit(params, support)
        kth = jax.lax.top_k(jnp.where(allowed, params["beta"], -1.0), config.heads_per_class)[0][:, -1:]
        kept = allowed & (params["beta"] >= kth) & (params["beta"] > 0)
        return {"beta": params["beta"] * kept, "b": params["b"]}, kept

    beta = start.w * start.beta[:, None]
    params, _ = jax.lax.fori_loop(
        0, 2, fit_and_keep, ({"beta": beta, "b": start.b + (beta * centre).sum(-1)}, allowed)
    )  # the refit on the kept heads leaves no other weight positive, so its own keeping changes nothing
    z_val = logits(params, problem.val)
    mixture = start._replace(
        w=params["beta"],
        t=jnp.zeros(M),
        b=params["b"] - (params["beta"] * centre).sum(-1),
        z_fit=logits(params, problem.fit),
        z_val=z_val,
        **_report(problem, z_val)._asdict(),
    )
    # the refit may drive a class's every kept weight to 0 (a class left to its bias): then no mixture
    better = _better(mixture, start) & (params["beta"] > 0).any(-1).all(where=real_class[:, 0])
    return jax.tree.map(lambda new, old: jnp.where(better, new, old), mixture, start)


def _pool(problem: Problem, general_share: float | str | None) -> Result:
    """Each class's candidates with equal weights, or the general model's share apart, fixed or measured on the
    node samples; uncalibrated (see the module docstring)."""
    mask = problem.cand_mask.astype(jnp.float32)
    w = mask / jnp.maximum(mask.sum(-1, keepdims=True), 1.0)
    t, b = jnp.zeros(problem.model_cost.shape[0]), jnp.zeros(mask.shape[0])
    if general_share is not None and problem.cand_general is not None:
        general = (problem.cand_general & problem.cand_mask).astype(jnp.float32)
        experts = mask - general
        count = experts.sum(-1, keepdims=True)
        both = (count > 0) & (general.sum(-1, keepdims=True) > 0)

        def shared(g):
            return jnp.where(both, general * g + experts * (1.0 - g) / jnp.maximum(count, 1.0), w)

        if general_share == "measured":
            general_alone = _node_accuracy(shared(1.0), t, b, problem)
            experts_alone = _node_accuracy(shared(0.0), t, b, problem)
            total = general_alone + experts_alone
            general_share = jnp.where(total > 0, general_alone / jnp.maximum(total, 1e-9), 0.5)
        w = shared(general_share)
    return Result(w, t, b, **_report(problem, _logits(w, t, b, problem, problem.val))._asdict(), continuous_w=w)


def _node_accuracy(w, t, b, problem: Problem) -> jax.Array:
    """Accuracy of a weighted selection on both halves' node samples together."""
    fit, val = problem.fit.weight.sum(), problem.val.weight.sum()
    correct = _accuracy(_logits(w, t, b, problem, problem.fit), problem.fit) * fit
    correct += _accuracy(_logits(w, t, b, problem, problem.val), problem.val) * val
    return correct / jnp.maximum(fit + val, 1.0)


@functools.partial(jax.jit, static_argnames=("config",))
def solve(problem: Problem, key: jax.Array, config: SolverConfig = SolverConfig()) -> Result:
    """CHCO on one padded problem.

    Restart 0 starts from the relaxation's selection, the others from random
    selections; each is improved by local search and the best wins; with
    `heads_per_class` > 1 it may then become a mixture. Returns weights w [K, C]
    (one-hot, or the mixture's beta with t = 0), t [M], b [K], validation accuracy
    overall and per class, and the relaxation's continuous weights. With `combination`
    "pool", the pool instead (its weights standing for the continuous ones).
    """
    problem = _samples_last(problem)
    if config.combination == "pool":
        return _pool(problem, config.pool_general_share)
    K, C = problem.cand_mask.shape
    keys = jax.random.split(key, config.restarts)
    continuous = _relax(problem, keys[0], config)
    random = jax.vmap(lambda k: masked_softmax(_normal_grid(k, (K, C)), problem.cand_mask))(keys[1:])

    def one_search(w):
        return _search(problem, _evaluate(problem, _start_picks(problem, w, config), config), config)

    winner = _best(jax.vmap(one_search)(jnp.concatenate([continuous[None], random])))
    if config.heads_per_class > 1:
        winner = _mixture(problem, winner, config)
    return _kept(winner)._replace(continuous_w=continuous)


@functools.partial(jax.jit, static_argnames=("config",))
def solve_fixed(problem: Problem, picks: jax.Array, config: SolverConfig = SolverConfig()) -> Result:
    """Calibrate and report a given selection, one candidate index per class `picks` [K] (baselines)."""
    return _kept(_evaluate(_samples_last(problem), picks, config))


@functools.partial(jax.jit, static_argnames=("config",))
def brute_force(problem: Problem, picks: jax.Array, config: SolverConfig = SolverConfig()) -> Result:
    """Every discrete selection in `picks` [P, K] (one candidate index per class), calibrated
    and scored on the validation half; returns the best by validation accuracy, then loss."""
    K = problem.cand_mask.shape[0]
    picks = jnp.pad(picks, ((0, 0), (0, K - picks.shape[1])))  # padded classes have no candidate to pick
    problem = _samples_last(problem)
    return _best(jax.vmap(lambda p: _kept(_evaluate(problem, p, config)))(picks))
