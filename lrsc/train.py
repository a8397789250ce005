"""Training one model until 100% training accuracy (or a cross-entropy threshold), a step cap, or divergence.

One readable loop in the spirit of nanoGPT: autograd, a torch optimiser, minibatches taken
by index from a training set that lives on the model's device (as in airbench). Per-step
records stay on the device and are read only when the run ends, so the loop never waits for
the host between evaluations.

A bias-free FCN trained with SGD (no ASAM) takes the stacked kernel instead, as a stack of
one (:mod:`lrsc.stacked`): its numbers are then the same alone as in any batch of a sweep.
The robust-training methods of ``train.method`` (JTT, LfF, GroupDRO; :mod:`lrsc.methods`) train
here, in the loop, whatever the model: the kernel implements ERM only.

Mixed precision (``train.precision`` bf16 or fp16) autocasts the training steps' forward
passes; the weights, the optimiser and every evaluation stay float32, and fp16 scales the
loss (``torch.amp.GradScaler``) so that small gradients do not underflow. fp32, the default,
runs the loop exactly as without the setting.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager, nullcontext
from typing import Callable, ContextManager, Iterator

import torch
import torch.nn.functional as F
from pytorch_optimizer import SAM, Kron
from torch import nn
from tqdm import tqdm  # plain text bars: tqdm.auto wants ipywidgets in notebooks

from lrsc import methods
from lrsc.datasets import Split, as_inputs
from lrsc.errors import ConfigError
from lrsc.models import predict
from lrsc.objective import focal_weight, lr_table
from lrsc.records import Recorder, Snapshot
from lrsc.seeding import derive_seed, generator
from lrsc.settings import METHOD_PARAMS, TrainSettings
from lrsc.stacked import can_train, train_batched
from lrsc.stopping import Monitor, TrainResult, finite_params


@contextmanager
def _global_rngs(seed: int) -> Iterator[None]:
    """Seed torch's and numpy's global generators from ``seed`` for the block, then restore them:
    PSGD-Kron draws from both (its preconditioner updates), and a run must not depend on
    what ran before it in the process."""
    import numpy as np

    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "optimizer"))
        np.random.seed(derive_seed(seed, "optimizer") % 2**32)
        try:
            yield
        finally:
            np.random.set_state(state)


def check_precision(s: TrainSettings, device: torch.device) -> None:
    """Raise ConfigError when ``device`` cannot train in ``s.precision``: fp16 needs CUDA (on a CPU,
    float16 autocasting is slow where it runs at all, and its gradient scaler is CUDA's)."""
    if s.precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"train.precision=fp16 needs a CUDA device, and this run trains on {device}; use "
                          f"train.precision=bf16 or fp32 there (or --device cuda)")


def autocast_for(s: TrainSettings, device: torch.device) -> Callable[[], ContextManager]:
    """A fresh context for each training step's forward pass: autocasting to the settings' precision."""
    if s.precision == "fp32":
        return nullcontext
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[s.precision]
    return lambda: torch.autocast(device.type, dtype=dtype)


def make_optimizer(params: list[nn.Parameter], s: TrainSettings) -> torch.optim.Optimizer:
    """The torch optimiser of the settings (wrapped in ASAM when ``asam_rho`` > 0)."""
    cls, kwargs = {
        "sgd": (torch.optim.SGD, {"momentum": s.momentum}),
        "adam": (torch.optim.Adam, {}),
        "adamw": (torch.optim.AdamW, {}),
        "psgd_kron": (Kron, {}),
    }[s.optimizer]
    if s.asam_rho > 0:
        return SAM(params, base_optimizer=cls, rho=s.asam_rho, adaptive=True, lr=s.lr, weight_decay=s.weight_decay,
                   **kwargs)
    return cls(params, lr=s.lr, weight_decay=s.weight_decay, **kwargs)


def train(model: nn.Module, data: Split, settings: TrainSettings | None = None, *, seed: int = 0,
          progress: bool = False, snapshot: Snapshot | None = None, snapshot_steps: tuple[int, ...] = (),
          **changes) -> TrainResult:
    """Train ``model`` in place on ``data`` (already on the model's device) with ``settings``.

    ``changes`` replace single settings, e.g. ``train(model, data, lr=0.5)``. The optimiser,
    penalties, focal loss, ASAM, LR schedule and robust-training method are
    :class:`lrsc.settings.TrainSettings`'s (JTT first trains its identification run, see :func:`_identify`).
    Data order: a fresh permutation per epoch drawn from the seed's ``"data_order"`` stream.
    Training accuracy and cross-entropy are checked on the full training set every
    ``eval_every`` steps; the run is fit at the first check that finds 100% accuracy (or,
    with ``stop_loss`` > 0, a mean cross-entropy below it), then trains ``extra_steps`` more.
    Every ``record_every`` steps the minibatch's :data:`lrsc.records.RECORDS` are kept (the
    loss is always the cross-entropy); at each of ``snapshot_steps`` the run reaches,
    ``snapshot(model)`` is kept too. ``progress`` shows a bar over the steps. ``data.x`` may hold
    uint8 pixel levels (a training set of images on a GPU, see :func:`lrsc.runs.load_data`):
    each minibatch then becomes float32 ``k / 255`` as it is taken, the values the float set holds.
    """
    s = TrainSettings.from_config({**(settings or TrainSettings()).to_config(), **changes})
    check_precision(s, data.x.device)
    snapshots = [snapshot] if snapshot else None
    if can_train(model, s):
        return train_batched([model], [data], [s], seed=[seed], progress=progress, snapshot=snapshots,
                             snapshot_steps=snapshot_steps)[0]
    with _global_rngs(seed):
        errors = None
        if s.method == "jtt":
            errors = _identify(model, data, s, seed)
            if isinstance(errors, TrainResult):
                return errors
        method = methods.build(s, model, data, errors)
        return _loop(model, data, s, seed, progress, snapshots, snapshot_steps, method)


def _identify(model: nn.Module, data: Split, s: TrainSettings, seed: int) -> torch.Tensor | TrainResult:
    """JTT's identification run: a copy of ``model`` trained by ERM with the run's settings and seed,
    capped at ``train.jtt_steps`` (scaled by ``cap_lr`` as the step cap is) and stopped, like any
    run, once it fits the training set. Returns its errors on the training set ``(n,)`` bool; when
    it diverges, its result, which is then the JTT run's (and ``model`` takes its weights)."""
    probe = copy.deepcopy(model)
    erm = {k: v for k, v in s.to_config().items() if k not in METHOD_PARAMS}
    result = train(probe, data, TrainSettings.from_config({**erm, "method": "erm", "max_steps": s.jtt_steps,
                                                           "extra_steps": 0}), seed=seed)
    if result.diverged:
        model.load_state_dict(probe.state_dict())
        return result
    return predict(probe, data.x)[1].argmax(1) != data.y


def _loop(model: nn.Module, data: Split, s: TrainSettings, seed: int, progress: bool,
          snapshot: list[Snapshot] | None, snapshot_steps: tuple[int, ...],
          method: methods.Method | None = None) -> TrainResult:
    """The training loop of :func:`train` for any model, optimiser and ``method`` (None: ERM), with autograd."""
    device, n = data.x.device, len(data)
    params = list(model.parameters())  # the run's model's: what the records and the L1 penalty see
    beside = method.models if method else []  # LfF's biased model trains alongside
    trained = params + [p for m in beside for p in m.parameters()]
    # CPU convolution kernels tend to prefer NHWC (python -m lrsc.bench measures the gain; 1.0-1.45x here)
    layout = torch.channels_last if any(p.dim() == 4 for p in params) else torch.contiguous_format
    for m in (model, *beside):
        m.to(memory_format=layout)
    opt = make_optimizer(trained, s)
    autocast = autocast_for(s, device)
    scaler = torch.amp.GradScaler(device.type, enabled=s.precision == "fp16")  # disabled: calls pass through
    cap = s.step_cap
    total = cap + s.extra_steps
    lrs = lr_table(s, total).tolist()  # float32 values, as the stacked kernel uses
    scheduled = s.schedule != "constant"
    for group in opt.param_groups:
        group["lr"] = lrs[0]
    gamma = torch.tensor([s.focal_gamma], device=device)
    conflicting = data.conflicting
    order = generator(seed, "data_order", device)
    recorder = Recorder(1, total, s.record_every, s.confident_prob, device, snapshot, snapshot_steps)
    monitor = Monitor(data, s.collapse_patience, s.stop_loss, s.extra_steps)
    row = torch.zeros(1, dtype=torch.long, device=device)

    def objective(x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                                   torch.Tensor]:
        """The training objective of the minibatch at rows ``idx``, its per-sample cross-entropies and its logits."""
        with autocast():
            logits = model(x).float()  # autocast's half-precision logits; .float() is a no-op in fp32
            extra = [m(x).float() for m in beside]
        losses = F.cross_entropy(logits, y, reduction="none")
        if method:
            loss = method.loss(idx, y, losses, extra)
        else:
            weighted = focal_weight(logits.detach().log_softmax(-1)[None], y[None], gamma)[0] * losses \
                if s.focal_gamma else losses  # the cross-entropy needs no weights: keep them off the hot path
            loss = weighted.mean()
        if s.l1:
            loss = loss + s.l1 * sum(p.abs().sum() for p in trained)
        return loss, losses, logits

    reason, step = "", 0
    for m in (model, *beside):
        m.train()
    recorder.snap(0, [model], [0])
    with tqdm(total=cap, desc=f"lr={s.lr:g}", unit="step", leave=False, disable=not progress) as bar:
        while not reason:
            perm = torch.randperm(n, device=device, generator=order)
            for start in range(0, n - s.batch_size + 1, s.batch_size):
                idx = perm[start:start + s.batch_size]
                x, y = as_inputs(data.x[idx]).contiguous(memory_format=layout), data.y[idx]
                if scheduled:
                    for group in opt.param_groups:
                        group["lr"] = lrs[step]
                losses, logits = optimizer_step(opt, scaler, objective, (x, y, idx), s.asam_rho > 0)
                step += 1
                if recorder.due(step):
                    recorder.add(row, step, losses.detach()[None], logits.detach()[None], y[None],
                                 conflicting[idx][None], [p.detach()[None] for p in params])
                recorder.snap(step, [model], [0])
                if step % s.eval_every and step not in (cap, monitor.deadline):
                    continue
                bar.update(s.eval_every)
                reason = _evaluate(model, data, recorder, monitor, row, step, s)
                bar.set_postfix(train_acc=f"{monitor.train_acc:.4f}")
                if reason:
                    break
    return monitor.result(reason, step, recorder, 0)


def optimizer_step(opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, objective: Callable,
                   batch: tuple[torch.Tensor, ...], asam: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on the minibatch ``batch`` (inputs, labels and, for a robust-training
    method, their training-set rows): ``objective(*batch)`` gives the loss, per-sample
    cross-entropies and logits; returns the last two. ``scaler`` scales fp16's loss (it is
    disabled otherwise; fp16 never comes with ASAM)."""
    opt.zero_grad(set_to_none=True)
    loss, losses, logits = objective(*batch)
    scaler.scale(loss).backward()
    if asam:  # ASAM: the gradient at the perturbed weights drives the step
        opt.first_step(zero_grad=True)
        objective(*batch)[0].backward()
        opt.second_step()
    else:
        scaler.step(opt)  # fp16: skips the step when the scaled gradients overflowed
        scaler.update()
    return losses, logits


def _evaluate(model: nn.Module, data: Split, recorder: Recorder, monitor: Monitor, row: torch.Tensor, step: int,
              s: TrainSettings) -> str:
    """Check the stopping rules on the full training set after ``step`` steps; why to stop, or ``""``."""
    finite = bool(recorder.finite(row, step, s.eval_every)) and finite_params(model)
    acc, loss, alive = 0.0, float("inf"), False
    if finite:
        feats, logits = predict(model, data.x)
        acc, alive = (logits.argmax(1) == data.y).float().mean().item(), bool(feats.any())
        loss = F.cross_entropy(logits, data.y).item()
    return monitor.check(finite, acc, loss, alive, step, at_cap=step >= s.step_cap)
