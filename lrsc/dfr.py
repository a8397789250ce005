"""Last-layer retraining on a group-balanced held-out split (DFR, Kirichenko et al. 2022).

Deep Feature Reweighting keeps a trained model's features and fits a new linear head on a
small group-balanced set of held-out samples: every group (y, b) cut at random to the
smallest group's size, features standardised on that set, and an L1-penalised multinomial
logistic regression (scikit-learn's objective ``||W||_1 + C * sum of cross-entropies``, the
intercept unpenalised). How much the retrained head gains over the trained one measures how
much of the core feature the representation already holds. DFR tunes C on half of its
held-out split and averages heads over several balanced subsets; here C is the metric
setting ``metrics.dfr_c`` and one balanced subset is drawn, from the run's seed.

The regression is convex; :func:`fit_l1_logistic` solves it by accelerated proximal gradient
(FISTA) in float64, so its answer does not depend on a solver's library.
"""
from __future__ import annotations

import math

import torch

MAX_ITERS = 3000  # FISTA's iterations at most; with restarts the regressions here converge within a few hundred
TOL = 1e-7  # stop once no weight moves by more than this (relative to the largest weight)


def balanced_rows(group: torch.Tensor, num_groups: int, g: torch.Generator) -> torch.Tensor:
    """Rows of a group-balanced subset: each of the ``num_groups`` groups cut at random (``g``) to
    the smallest group's size; empty when a group has no sample. group ``(n,)``; returns ``(k * num_groups,)``."""
    rows = [torch.nonzero(group.cpu() == k).flatten() for k in range(num_groups)]
    size = min(len(r) for r in rows)
    picked = [r[torch.randperm(len(r), generator=g)[:size]] for r in rows]
    return torch.cat(picked).to(group.device)


def soft_threshold(w: torch.Tensor, t: float) -> torch.Tensor:
    """The proximal map of ``t * ||w||_1``: each entry moved ``t`` towards 0, and 0 within ``t`` of it."""
    return w.sign() * (w.abs() - t).clamp_min(0)


def fit_l1_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, c: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights ``(d, K)`` and intercepts ``(K,)`` minimising ``||W||_1 + c * sum_i CE(x_i W + b, y_i)``
    over ``x`` ``(m, d)`` with labels ``y`` ``(m,)`` (float64).

    FISTA on the mean form ``mean CE + ||W||_1 / (c m)``: the step is 1 / L with L = ||[x, 1]||_2^2 / (2 m),
    a Lipschitz constant of the mean cross-entropy's gradient (the softmax's Jacobian has norm at most 1/2);
    its momentum restarts whenever it points against the step just taken (O'Donoghue & Candès 2015),
    which keeps it from the slow oscillation plain FISTA shows on well-conditioned problems.
    """
    x = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64, device=x.device)], 1)
    m, d1 = x.shape
    onehot = torch.nn.functional.one_hot(y, num_classes).double()
    step = 2 * m / torch.linalg.matrix_norm(x, ord=2).item() ** 2
    lam = 1 / (c * m)
    w = torch.zeros(d1, num_classes, dtype=torch.float64, device=x.device)
    z, t = w.clone(), 1.0
    for _ in range(MAX_ITERS):
        grad = x.T @ ((x @ z).softmax(1) - onehot) / m
        new = z - step * grad
        new[:-1] = soft_threshold(new[:-1], step * lam)  # the intercept row is not penalised
        if ((z - new) * (new - w)).sum() > 0:  # momentum against the step: restart it
            t = 1.0
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        moved = (new - w).abs().max().item()
        z, w, t = new + (t - 1) / t_next * (new - w), new, t_next
        if moved <= TOL * max(1.0, w.abs().max().item()):
            break
    return w[:-1], w[-1]


def retrained_logits(train_feats: torch.Tensor, train_y: torch.Tensor, train_group: torch.Tensor, num_groups: int,
                     num_classes: int, c: float, g: torch.Generator, feats: torch.Tensor) -> torch.Tensor | None:
    """DFR: the logits ``(n, K)`` on ``feats`` ``(n, d)`` of a head fitted on a group-balanced subset
    (:func:`balanced_rows`) of the held-out features ``train_feats`` ``(m, d)`` with labels and groups
    ``(m,)``; None when a group is missing from the held-out split. Features are standardised
    with the balanced subset's mean and standard deviation (a feature constant there is only centred)."""
    rows = balanced_rows(train_group, num_groups, g)
    if not len(rows):
        return None
    fit = train_feats[rows].double()
    mean, sd = fit.mean(0), fit.std(0)
    sd = torch.where(sd > 0, sd, torch.ones_like(sd))
    w, b = fit_l1_logistic((fit - mean) / sd, train_y[rows], num_classes, c)
    return ((feats.double() - mean) / sd) @ w + b
