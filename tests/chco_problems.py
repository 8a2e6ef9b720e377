"""Small CHCO problems whose best combination is known by construction."""

import numpy as np

from mll_jax.selection import chco


def constructed_problem(seed=0, n_per_class=60, K=3, C=4):
    """Candidate 2 of every class is informative; the others are noise. Model k*C + c per candidate."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(K), n_per_class)
    N = len(labels)
    scores = rng.normal(-2.0, 1.0, (N, K, C)).astype(np.float32)
    # informative but overlapping: each class needs its own informative candidate
    scores[:, :, 2] = np.where(np.eye(K)[labels] > 0, -0.5, -2.0) + rng.normal(0, 0.7, (N, K))
    M = K * C
    return chco.Problem(
        *chco.halves(scores, labels.astype(np.int32), np.arange(N) % 2 == 0),
        cand_mask=np.ones((K, C), bool),
        cand_model=np.arange(M).reshape(K, C).astype(np.int32),
        model_cost=np.full(M, 0.1, np.float32),
    )


def two_noisy_views(seed=0, n_per_class=150, K=3, C=4):
    """Candidates 0 and 1 of every class see the class through independent noise: their sum beats either alone."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(K), n_per_class)
    N = len(labels)
    scores = rng.normal(-2.0, 0.3, (N, K, C)).astype(np.float32)
    signal = np.where(np.eye(K)[labels] > 0, -1.0, -2.0)
    for c in (0, 1):
        scores[:, :, c] = signal + rng.normal(0, 1.0, (N, K))
    M = K * C
    return chco.Problem(
        *chco.halves(scores, labels.astype(np.int32), np.arange(N) % 2 == 0),
        cand_mask=np.ones((K, C), bool),
        cand_model=np.arange(M).reshape(K, C).astype(np.int32),
        model_cost=np.zeros(M, np.float32),
    )
