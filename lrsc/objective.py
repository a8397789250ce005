"""What training minimises and at which LR: the focal loss's gradient factor and the LR schedules.

Both training paths (``lrsc.train`` and ``lrsc.stacked``) take these from here, so that they
share their arithmetic exactly.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from pytorch_optimizer.lr_scheduler import get_wsd_schedule

from lrsc.settings import TrainSettings


def focal_weight(logp: torch.Tensor, y: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Per-sample factor c with d(focal loss)/d(logits) = c * d(cross-entropy)/d(logits).

    The focal loss (Lin et al.) is ``(1 - p)^gamma * CE`` with p the true class's probability, so
    ``c = (1 - p)^gamma - gamma * p * (1 - p)^(gamma - 1) * log p``. logp: log-probabilities
    ``(A, B, K)``; y ``(A, B)``; gamma ``(A,)``. Returns ``(A, B)``, exactly 1 where gamma is 0.
    """
    lp = logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    p = lp.exp()
    g = gamma.view(-1, 1)
    rest = (1 - p).clamp_min(torch.finfo(p.dtype).tiny)  # p rounds to 1 for well-fit samples
    c = rest.pow(g) - g * p * rest.pow(g - 1) * lp
    return torch.where(g == 0, torch.ones_like(c), c)


@lru_cache(maxsize=64)
def _multipliers(schedule: str, steps: int, horizon: int, factor: float, at: int, warmup: int,
                 decay_frac: float) -> tuple[float, ...]:
    """The LR multiplier of each of ``steps`` steps (entry s is step s + 1's), from torch's and
    pytorch-optimizer's schedulers run on a dummy optimizer, so that both training paths use
    their exact definitions. Past ``horizon`` a cosine or WSD schedule holds its final value."""
    if schedule == "constant":
        return (1.0,) * steps
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=1.0)
    if schedule == "step":
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[at], gamma=factor)
    elif schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=horizon, eta_min=factor)
    else:
        decay = max(1, round(decay_frac * horizon))
        sched = get_wsd_schedule(opt, num_warmup_steps=warmup, num_stable_steps=max(0, horizon - warmup - decay),
                                 num_decay_steps=decay, min_lr_ratio=factor)
    out = []
    for step in range(steps):
        out.append(opt.param_groups[0]["lr"])
        if schedule == "step" or step < horizon:
            opt.step()
            sched.step()
    return tuple(out)


def lr_table(settings: TrainSettings, steps: int) -> torch.Tensor:
    """The LR of each of ``steps`` training steps, shape ``(steps,)`` float32 (entry s is step s + 1's).

    ``settings.schedule``: ``"constant"``; ``"step"`` (times ``schedule_factor`` after step
    ``schedule_at``); ``"cosine"`` (cosine annealing to ``schedule_factor * lr`` over
    ``schedule_steps``); ``"wsd"`` (warmup-stable-decay: ``warmup_steps`` of linear warmup, a
    constant stretch, then a 1-sqrt decay to ``schedule_factor * lr`` over the last
    ``decay_frac`` of ``schedule_steps``). ``schedule_steps`` 0 means the step cap (``TrainSettings.step_cap``).
    """
    s = settings
    horizon = s.schedule_steps or s.step_cap
    mult = _multipliers(s.schedule, steps, horizon, s.schedule_factor, s.schedule_at, s.warmup_steps, s.decay_frac)
    return torch.tensor([s.lr * m for m in mult], dtype=torch.float32)
