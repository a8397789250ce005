"""Plain SGD training until 100% training accuracy, a step cap, or divergence.

One readable loop in the spirit of nanoGPT. The training set lives on the model's
device and is batched by index (as in airbench); per-step records stay on the device
and are read only at evaluations, so the hot loop never waits for the host.

``train`` trains one model; ``train_batched`` trains M models of one architecture at
once (their weights stacked along a leading dim), each with its own learning rate, seed,
training set and stopping point, and gives each the result ``train`` would have given.
Both apply the same stopping rules (:class:`_Monitor`) and keep the same records
(:data:`RECORDS`).

A bias-free FCN trained with plain SGD always goes through the stacked kernel
(:class:`_StackedFcn`), alone or with others: its per-model arithmetic is the same
whatever its batch-mates, so a run's numbers depend on its settings only, not on how a
sweep grouped it (:func:`stacked_kernel`).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap
from tqdm import tqdm  # plain text bars: tqdm.auto wants ipywidgets in notebooks

from lrsc.datasets import Split
from lrsc.models import FCN, predict
from lrsc.seeding import generator


# Per-step records of a training run (one row every ``record_every`` steps), in this order.
RECORDS = ("loss", "bc_loss_ratio", "bc_loss", "ba_loss", "confident_bc", "logit_norm", "param_norm")


@dataclass
class TrainResult:
    """What a training run ended with.

    steps: SGD steps taken. converged: reached 100% training accuracy before the cap.
    diverged: ended by a non-finite loss or parameter, a dead network (every
    penultimate unit off on every training input) or a collapse (training accuracy
    fell back to chance after having learnt and stayed there). reason: one of
    ``"converged"``, ``"step cap"``, ``"non-finite"``, ``"dead network"``, ``"collapse"``.
    train_acc: training accuracy at the last evaluation (fraction in [0, 1]).
    records: ``{name: (steps // record_every,) float32 CPU tensor}`` for each of
    :data:`RECORDS`, row ``i`` taken after step ``(i + 1) * record_every`` (see :func:`step_records`).
    snapshots: ``[(step, {name: tensor})]``, what the ``snapshot`` function returned at each
    of the ``snapshot_steps`` the run reached (step 0 is before the first step).
    """

    steps: int
    converged: bool
    diverged: bool
    reason: str
    train_acc: float
    records: dict[str, torch.Tensor]
    snapshots: list[tuple[int, dict[str, torch.Tensor]]] = field(default_factory=list)


def bc_loss_ratio(losses: torch.Tensor, conflicting: torch.Tensor) -> torch.Tensor:
    """Sum of bias-conflicting samples' losses over the sum of all losses in a minibatch.

    losses: per-sample losses, shape ``(..., B)``; conflicting: boolean mask of the same shape.
    Returns shape ``(...)`` (0 where the minibatch holds no BC sample).
    """
    return (losses * conflicting).sum(-1) / losses.sum(-1)


def step_records(losses: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, conflicting: torch.Tensor,
                 weights: Sequence[torch.Tensor], confident_prob: float) -> torch.Tensor:
    """The :data:`RECORDS` of A models' minibatches, shape ``(A, len(RECORDS))``.

    losses: per-sample cross-entropy ``(A, B)``; logits ``(A, B, K)``; y, conflicting ``(A, B)``;
    weights: every parameter of the A models, stacked, each ``(A, ...)`` (after the step).
    loss: mean loss; bc_loss_ratio: :func:`bc_loss_ratio`; bc_loss / ba_loss: mean loss of the
    bias-conflicting / bias-aligned samples (NaN when there are none); confident_bc: the share of
    BC samples predicted wrong with a probability above ``confident_prob``; logit_norm: mean L2
    norm of a sample's logits; param_norm: L2 norm of all parameters. Row-wise reductions only,
    so every number is the same whatever the thread count and the batch-mates.
    """
    bc = conflicting.float()
    n_bc, n_ba = bc.sum(-1), (1 - bc).sum(-1)
    prob, pred = logits.softmax(-1).max(-1)
    confident_wrong = ((pred != y) & (prob > confident_prob)).float()
    sq_norm = sum(w.flatten(1).pow(2).sum(1) for w in weights)
    return torch.stack([
        losses.mean(-1), bc_loss_ratio(losses, conflicting),
        (losses * bc).sum(-1) / n_bc, (losses * (1 - bc)).sum(-1) / n_ba,
        (confident_wrong * bc).sum(-1) / n_bc, logits.norm(dim=-1).mean(-1), sq_norm.sqrt(),
    ], dim=-1)


# What a run keeps at each of its snapshot steps: model -> {name: tensor}.
Snapshot = Callable[[nn.Module], dict[str, torch.Tensor]]


class _Recorder:
    """Records of M models every ``every`` steps, and their snapshots, kept on the device."""

    def __init__(self, m: int, max_steps: int, every: int, confident_prob: float, device: torch.device,
                 snapshot: Sequence[Snapshot] | None, snapshot_steps: Sequence[int]):
        self.every, self.confident_prob = every, confident_prob
        self.hist = torch.full((m, max_steps // every, len(RECORDS)), float("nan"), device=device)
        self.snapshot, self.snapshot_steps = snapshot, set(snapshot_steps) if snapshot else set()
        self.snapshots: list[list[tuple[int, dict[str, torch.Tensor]]]] = [[] for _ in range(m)]

    def add(self, rows: torch.Tensor, step: int, losses: torch.Tensor, logits: torch.Tensor, y: torch.Tensor,
            conflicting: torch.Tensor, weights: Sequence[torch.Tensor]) -> None:
        """Record step ``step`` (1-based, just taken) of the models in ``rows`` when it is due."""
        if step % self.every == 0:
            self.hist[rows, step // self.every - 1] = step_records(losses, logits, y, conflicting, weights,
                                                                   self.confident_prob)

    def snap(self, step: int, models: Sequence[nn.Module], active: Sequence[int]) -> None:
        """Take the snapshots due at ``step`` of ``models[i]`` for each ``i`` in ``active``."""
        if step in self.snapshot_steps:
            for i in active:
                self.snapshots[i].append((step, self.snapshot[i](models[i])))

    def finite(self, rows: torch.Tensor, step: int, span: int) -> torch.Tensor:
        """Whether the losses recorded in the last ``span`` steps before ``step`` are finite, ``(A,)``."""
        return torch.isfinite(self.hist[rows, max(0, step - span) // self.every:step // self.every, 0]).all(1)

    def records(self, i: int, steps: int) -> dict[str, torch.Tensor]:
        rows = self.hist[i, :steps // self.every].float().cpu()
        return {name: rows[:, k].clone() for k, name in enumerate(RECORDS)}


def stacked_kernel(model: nn.Module, momentum: float = 0.0, weight_decay: float = 0.0) -> bool:
    """Whether ``model`` trains through the stacked FCN kernel: a bias-free :class:`FCN` with
    plain SGD (no momentum, no weight decay). Such a model takes that path alone or batched."""
    return type(model) is FCN and model.head.bias is None and momentum == 0 and weight_decay == 0


def finite_params(model: nn.Module) -> bool:
    """Whether every parameter of ``model`` is finite."""
    return all(torch.isfinite(p).all() for p in model.parameters())


class _Monitor:
    """The stopping rules of one run, applied at every evaluation (each ``eval_every`` steps)."""

    def __init__(self, data: Split, collapse_patience: int):
        self.chance = torch.bincount(data.y).max().item() / len(data)  # accuracy of the majority-class guess
        self.patience = collapse_patience
        self.best_acc, self.at_chance, self.train_acc = 0.0, 0, 0.0

    def check(self, finite: bool, train_acc: float, alive: bool, at_cap: bool) -> str:
        """Why training must stop now (a ``TrainResult.reason``), or ``""`` to go on.

        finite: the weights and the losses since the previous evaluation are finite;
        train_acc: accuracy on the full training set; alive: some penultimate unit is
        non-zero on some training input; at_cap: the step cap is reached.
        """
        if not finite:
            return "non-finite"
        self.train_acc = train_acc
        self.best_acc = max(self.best_acc, train_acc)
        learnt = self.best_acc > self.chance + 0.05
        self.at_chance = self.at_chance + 1 if learnt and train_acc <= self.chance + 0.01 else 0
        if train_acc == 1.0:
            return "converged"
        if not alive:
            return "dead network"
        if self.at_chance >= self.patience:
            return "collapse"
        return "step cap" if at_cap else ""

    def result(self, reason: str, steps: int, recorder: _Recorder, i: int) -> TrainResult:
        """Model ``i``'s result after ``steps`` steps, with its records and snapshots from ``recorder``."""
        return TrainResult(
            steps=steps,
            converged=reason == "converged",
            diverged=reason in ("non-finite", "dead network", "collapse"),
            reason=reason,
            train_acc=self.train_acc,
            records=recorder.records(i, steps),
            snapshots=recorder.snapshots[i],
        )


def train(model: nn.Module, data: Split, *, lr: float, batch_size: int = 100, max_steps: int = 15000,
          momentum: float = 0.0, weight_decay: float = 0.0, eval_every: int = 100, collapse_patience: int = 10,
          record_every: int = 10, confident_prob: float = 0.9, seed: int = 0, progress: bool = False,
          snapshot: Snapshot | None = None, snapshot_steps: Sequence[int] = ()) -> TrainResult:
    """Train ``model`` in place with constant-LR SGD on ``data`` (already on the model's device).

    Data order: a fresh permutation per epoch drawn from the seed's ``"data_order"`` stream.
    Training accuracy is checked on the full training set every ``eval_every`` steps; the
    run stops at the first check that finds 100% (so ``steps`` has that resolution).
    Every ``record_every`` steps the :data:`RECORDS` of the minibatch are kept; at each of
    ``snapshot_steps`` the run reaches, ``snapshot(model)`` is kept too.
    A model for which :func:`stacked_kernel` holds is trained by :func:`train_batched` as a
    stack of one, so that it gets the same numbers alone as in any batch.
    """
    settings = dict(batch_size=batch_size, max_steps=max_steps, eval_every=eval_every,
                    collapse_patience=collapse_patience, record_every=record_every, confident_prob=confident_prob,
                    progress=progress, snapshot_steps=snapshot_steps)
    snapshots = [snapshot] if snapshot else None
    if stacked_kernel(model, momentum, weight_decay):
        return train_batched([model], [data], lr=[lr], seed=[seed], snapshot=snapshots, **settings)[0]
    return _train_torch(model, data, lr=lr, momentum=momentum, weight_decay=weight_decay, seed=seed,
                        snapshot=snapshots, **settings)


def _train_torch(model: nn.Module, data: Split, *, lr: float, batch_size: int, max_steps: int, momentum: float,
                 weight_decay: float, eval_every: int, collapse_patience: int, record_every: int,
                 confident_prob: float, seed: int, progress: bool, snapshot: Sequence[Snapshot] | None,
                 snapshot_steps: Sequence[int]) -> TrainResult:
    """``train`` with autograd and ``torch.optim.SGD``, for any model (the reference the stacked kernel is tested against)."""
    device = data.x.device
    n = len(data)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    g = generator(seed, "data_order", device)
    recorder = _Recorder(1, max_steps, record_every, confident_prob, device, snapshot, snapshot_steps)
    monitor = _Monitor(data, collapse_patience)
    row = torch.zeros(1, dtype=torch.long, device=device)
    reason = ""
    step = 0
    bar = tqdm(total=max_steps, desc=f"lr={lr:g}", unit="step", leave=False, disable=not progress)
    model.train()
    recorder.snap(0, [model], [0])
    while not reason:
        perm = torch.randperm(n, device=device, generator=g)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = perm[start:start + batch_size]
            logits = model(data.x[idx])
            losses = F.cross_entropy(logits, data.y[idx], reduction="none")
            opt.zero_grad(set_to_none=True)
            losses.mean().backward()
            opt.step()
            step += 1
            recorder.add(row, step, losses.detach()[None], logits.detach()[None], data.y[idx][None],
                         data.conflicting[idx][None], [p.detach()[None] for p in model.parameters()])
            recorder.snap(step, [model], [0])
            if step % eval_every and step < max_steps:
                continue
            bar.update(eval_every)
            finite = bool(recorder.finite(row, step, eval_every)) and finite_params(model)
            acc, alive = 0.0, False
            if finite:
                feats, logits = predict(model, data.x)
                acc, alive = (logits.argmax(1) == data.y).float().mean().item(), bool(feats.any())
            reason = monitor.check(finite, acc, alive, at_cap=step >= max_steps)
            bar.set_postfix(train_acc=f"{monitor.train_acc:.4f}")
            if reason:
                break
    bar.close()
    return monitor.result(reason, step, recorder, 0)


# One SGD step of A <= M stacked models: (weights, x (A, B, ...), y (A, B), lr / B (A,)) -> per-sample
# losses (A, B) and logits (A, B, K). It updates the weights (a list of (A, *shape) tensors) in place.
Step = Callable[[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
# Forward pass of M stacked models: (weights, x (M, N, ...)) -> (features (M, N, d), logits (M, N, K)).
Forward = Callable[[list[torch.Tensor], torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class _StackedFcn:
    """Forward pass (a :data:`Forward`) and SGD step (a :data:`Step`) of M stacked bias-free
    FCNs, the backward pass written out as batched matmuls.

    At parity size (2x200 units, batch 100) autograd's bookkeeping costs about as much as the
    arithmetic, and so does allocating: each fresh (M, B, width) activation is a new mapping
    whose pages fault in on first touch. So every matmul here writes into a buffer kept
    between calls, and each weight is updated in place with one ``baddbmm_``.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, int], torch.Tensor] = {}

    def _buffer(self, key: tuple[str, int], like: torch.Tensor, *shape: int) -> torch.Tensor:
        """A ``shape`` tensor in the buffer named ``key``, grown when too small; its old content is garbage."""
        size = math.prod(shape)
        buf = self._buffers.get(key)
        if buf is None or buf.numel() < size:
            buf = self._buffers[key] = like.new_empty(size)
        return buf[:size].view(shape)

    def _activations(self, weights: list[torch.Tensor], x: torch.Tensor, use: str) -> list[torch.Tensor]:
        """Each layer's input, then the logits; x ``(M, N, ...)``, each ``(M, N, width)``."""
        acts = [x.flatten(2)]
        for layer, w in enumerate(weights):
            out = self._buffer((use, layer), w, *acts[-1].shape[:2], w.shape[1])
            acts.append(torch.bmm(acts[-1], w.transpose(1, 2), out=out))
            if layer < len(weights) - 1:
                acts[-1].relu_()
        return acts

    def forward(self, weights: list[torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and logits, valid until the next call (they live in its buffers)."""
        *_, feats, logits = self._activations(weights, x, "forward")
        return feats, logits

    def step(self, weights: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
             scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """weights: hidden layers then head, each ``(A, out, in)``; x ``(A, B, ...)``; y ``(A, B)``;
        scale: each model's lr / B, ``(A,)``. Returns the per-sample losses ``(A, B)`` and the
        logits ``(A, B, K)`` (valid until the next call)."""
        *acts, logits = self._activations(weights, x, "step")
        logp = logits.log_softmax(-1)
        target = y.unsqueeze(-1)
        losses = -logp.gather(-1, target).squeeze(-1)
        # d(lr * mean cross-entropy)/d(logits) = lr / B * (softmax - one-hot): the LR rides along the backward pass
        delta = logp.exp_().scatter_add_(-1, target, torch.full_like(target, -1, dtype=logp.dtype))
        delta.mul_(scale.view(-1, 1, 1))
        for layer in reversed(range(len(weights))):
            w, below = weights[layer], None
            if layer:  # the gradient below, taken before w moves; threshold_backward is ReLU's backward
                below = torch.bmm(delta, w, out=self._buffer(("delta", layer), w, *acts[layer].shape))
                torch.ops.aten.threshold_backward.grad_input(below, acts[layer], 0, grad_input=below)
            w.baddbmm_(delta.transpose(1, 2), acts[layer], alpha=-1.0)
            delta = below
        return losses, logits


class _FeaturesAndLogits(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net.features(x)
        return h, self.net.head(h)


def _autograd_path(model: nn.Module) -> tuple[Step, Forward]:
    """SGD step and forward pass of M stacked copies of any buffer-free ``model`` (the CNN, an
    FCN with bias): ``vmap`` runs the model's own code on each model's weights; autograd does
    the backward."""
    template = _FeaturesAndLogits(copy.deepcopy(model).to("meta"))
    names = [name for name, _ in template.named_parameters()]
    forward = vmap(lambda params, x: functional_call(template, dict(zip(names, params)), (x,)))

    def step(weights: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
             scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        params = [w.detach().requires_grad_() for w in weights]
        logits = forward(params, x)[1]
        losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view_as(y)
        grads = torch.autograd.grad((losses * scale[:, None]).sum(), params)  # already times lr / B
        for w, grad in zip(weights, grads):
            w.sub_(grad)
        return losses.detach(), logits.detach()

    return step, forward


@torch.no_grad()
def _stacked_stats(forward: Forward, weights: list[torch.Tensor], xs: torch.Tensor, ys: torch.Tensor,
                   src: torch.Tensor) -> tuple[list[float], list[bool]]:
    """Full-training-set accuracy of each stacked model and whether any of its penultimate
    units fires on any input: one batched forward pass over chunks of every model's own
    training set ``xs[src[i]]`` (xs ``(K, n, ...)``, src ``(A,)``)."""
    n, a = xs.shape[1], len(src)
    widest = max(xs[0, 0].numel(), max(w.shape[1] for w in weights))
    # near 16 MB activations for a stack of 24; the chunk does not depend on the stack's size, so
    # neither do the numbers
    chunk = max(1, 2**22 // (24 * widest))
    correct = torch.zeros(a, device=xs.device)
    alive = torch.zeros(a, dtype=torch.bool, device=xs.device)
    for start in range(0, n, chunk):
        feats, logits = forward(weights, xs[src, start:start + chunk])
        correct += (logits.argmax(-1) == ys[src, start:start + chunk]).sum(1)
        feats = feats.flatten(1)
        alive |= (feats.amax(1) > 0) | (feats.amin(1) < 0)  # much faster than a (M, N d) mask's any()
    return (correct / n).tolist(), alive.tolist()


def _bind(model: nn.Module, weights: list[torch.Tensor], i: int) -> None:
    """Make ``model``'s parameters views of the ``i``-th slice of the stacked ``weights``."""
    for p, w in zip(model.parameters(), weights):
        p.data = w[i]


def train_batched(models: Sequence[nn.Module], data: Sequence[Split], *, lr: Sequence[float], seed: Sequence[int],
                  batch_size: int = 100, max_steps: int = 15000, eval_every: int = 100, collapse_patience: int = 10,
                  record_every: int = 10, confident_prob: float = 0.9, progress: bool = False,
                  snapshot: Sequence[Snapshot] | None = None, snapshot_steps: Sequence[int] = ()) -> list[TrainResult]:
    """Train M models of one buffer-free architecture at once, each exactly as ``train`` would.

    Model i is trained in place with plain SGD (no momentum or weight decay: runs that need
    them go through ``train``) at ``lr[i]`` on ``data[i]``, in the data order of ``seed[i]``,
    and stops on its own by ``train``'s rules (``snapshot[i]`` is model i's, see ``train``); it then leaves the stack (the others go on,
    and get faster) with its weights, records and snapshots as of that step. ``data[i]`` are
    on one device, with equal sizes and shapes; models that share a Split share its memory.
    Bias-free FCNs (the stacked kernel) get exactly the numbers ``train`` gives them; other
    models (``vmap`` over their own code) agree with ``train`` to float rounding only, and
    their numbers depend on their batch-mates (a grouped convolution sums in another order).
    """
    m = len(models)
    if not (len(data) == len(lr) == len(seed) == m):
        raise ValueError(f"need one Split, lr and seed per model; got {len(data)}, {len(lr)}, {len(seed)} for {m} models")
    if any(len(list(model.buffers())) for model in models):
        raise ValueError("train_batched needs buffer-free models (no BatchNorm); train them one at a time")
    device = data[0].x.device
    n = len(data[0])
    if any(len(d) != n for d in data) or batch_size > n:
        raise ValueError(f"need training sets of one size, at least batch_size={batch_size}; got {[len(d) for d in data]}")
    distinct = list({id(d.x): d for d in data}.values())
    which = torch.tensor([[id(s.x) for s in distinct].index(id(d.x)) for d in data], device=device)
    xs = torch.stack([d.x for d in distinct])  # (K, n, ...) for K distinct training sets
    ys = torch.stack([d.y for d in distinct])
    # every sample of every distinct set, one row each, and buffers for a step's minibatches
    tables = [t.flatten(0, 1) for t in (xs, ys, torch.stack([d.conflicting for d in distinct]))]
    batch_bufs = [t.new_empty(m * batch_size, *t.shape[1:]) for t in tables]

    weights = [torch.stack([p.detach() for p in ps]) for ps in zip(*(model.parameters() for model in models))]
    if stacked_kernel(models[0]):
        fcn = _StackedFcn()
        step_fn, forward = fcn.step, fcn.forward
    else:
        step_fn, forward = _autograd_path(models[0])
    for i, model in enumerate(models):
        _bind(model, weights, i)
        model.train()
    gens = [generator(s, "data_order", device) for s in seed]
    lr_over_b = torch.tensor(lr, device=device, dtype=torch.float32) / batch_size
    monitors = [_Monitor(d, collapse_patience) for d in data]
    recorder = _Recorder(m, max_steps, record_every, confident_prob, device, snapshot, snapshot_steps)
    results: list[TrainResult | None] = [None] * m
    active = list(range(m))  # the models still training, in the order of the stacked weights
    rows = torch.arange(m, device=device)
    steps_per_epoch = n // batch_size
    step = 0
    bar = tqdm(total=max_steps, desc=f"{m} models", unit="step", leave=False, disable=not progress)
    recorder.snap(0, models, active)
    while active:
        if step % steps_per_epoch == 0:
            perms = torch.stack([torch.randperm(n, device=device, generator=gens[i]) for i in active])
        start = step % steps_per_epoch * batch_size
        flat = (which[rows, None] * n + perms[:, start:start + batch_size]).view(-1)  # (A B,) rows of the tables
        x, y, conflicting = (torch.index_select(t, 0, flat, out=buf[:len(flat)]).view(len(rows), batch_size, *t.shape[1:])
                             for t, buf in zip(tables, batch_bufs))
        losses, logits = step_fn(weights, x, y, lr_over_b[rows])
        step += 1
        recorder.add(rows, step, losses, logits, y, conflicting, weights)
        recorder.snap(step, models, active)
        if step % eval_every and step < max_steps:
            continue
        bar.update(eval_every)
        finite = recorder.finite(rows, step, eval_every)
        for w in weights:
            finite &= torch.isfinite(w.flatten(1)).all(1)
        accs, alive = _stacked_stats(forward, weights, xs, ys, which[rows])
        for i, ok, acc, on in zip(active, finite.tolist(), accs, alive):
            reason = monitors[i].check(ok, acc, on, at_cap=step >= max_steps)
            if reason:
                results[i] = monitors[i].result(reason, step, recorder, i)
                for p in models[i].parameters():
                    p.data = p.data.clone()  # off the stack, which moves on without this model
        keep = [j for j, i in enumerate(active) if results[i] is None]
        if len(keep) < len(active):
            active = [active[j] for j in keep]
            rows = torch.tensor(active, device=device, dtype=torch.long)
            weights = [w[keep] for w in weights]
            perms = perms[keep]
            for j, i in enumerate(active):
                _bind(models[i], weights, j)
            bar.set_postfix(training=len(active))
    bar.close()
    return results
