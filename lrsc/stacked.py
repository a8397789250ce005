"""Training many models of one architecture at once, their weights stacked along a leading dim.

:func:`train_batched` trains M models together, each with its own learning rate, seed,
training set, per-model settings (momentum, weight decay, L1, focal gamma, LR schedule,
stopping; see :data:`lrsc.settings.PER_MODEL`) and stopping point, and gives each the result
``lrsc.train.train`` would have given it. Two step implementations:

- :class:`StackedFcn`, for bias-free FCNs trained with SGD: the backward pass written out as
  batched matmuls into buffers kept between steps. Each model's products are its own slice of
  a batched matmul, so its arithmetic is the same, bit for bit, whatever its batch-mates:
  such a model always trains through this kernel, alone or batched (:func:`can_train`).
- the autograd path for any other buffer-free model: ``vmap`` runs the model's own code on
  each model's weights. Its numbers depend on the batch-mates (a grouped convolution sums in
  another order), which is why sweeps train such models one at a time.
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap
from tqdm import tqdm  # plain text bars: tqdm.auto wants ipywidgets in notebooks

from lrsc.datasets import Split, as_inputs
from lrsc.models import FCN, features_and_logits
from lrsc.objective import focal_weight, lr_table
from lrsc.records import Recorder, Snapshot
from lrsc.seeding import generator
from lrsc.settings import PER_MODEL, TrainSettings
from lrsc.stopping import Monitor, TrainResult

# One step of A <= M stacked models: (weights, x (A, B, ...), y (A, B), scale (A,), focal gamma (A,) or
# None, in_place) -> per-sample cross-entropies (A, B), logits (A, B, K) and, unless in place, the
# gradients. In place (plain SGD), scale is each model's lr / B and the weights (a list of (A, *shape)
# tensors) take the step; otherwise scale is 1 / B and the mean-loss gradients come back, for an
# :class:`Sgd` to apply.
Step = Callable[[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None", bool],
                tuple[torch.Tensor, torch.Tensor, "list[torch.Tensor] | None"]]
# Forward pass of M stacked models: (weights, x (M, N, ...)) -> (features (M, N, d), logits (M, N, K)).
Forward = Callable[[list[torch.Tensor], torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
# Called when model i leaves the stack with its result (its weights are its own again by then).
OnDone = Callable[[int, TrainResult], None]


def can_train(model: nn.Module, settings: TrainSettings) -> bool:
    """Whether ``model`` trains through :class:`StackedFcn`: a bias-free :class:`~lrsc.models.FCN`
    whose settings the kernel implements (any momentum, weight decay, L1, focal gamma and
    schedule; the settings declared ``stacked=False``, such as the optimiser, ASAM and the
    precision, at their defaults only). Such a model takes that path alone or batched."""
    return type(model) is FCN and model.head.bias is None and not settings.loop_only()


class Sgd:
    """SGD with each stacked model's own momentum, weight decay (L2) and L1 penalty, in
    ``torch.optim.SGD``'s arithmetic (no dampening, no Nesterov; the L1 term ``l1 * sign(w)`` is
    added to the gradient before the weight decay's ``weight_decay * w``).

    ``plain`` when no model uses any of the three: the kernel then folds the LR into its backward
    pass and updates in place. Every other stack takes the gradients and calls :meth:`apply`,
    where a model whose settings are 0 gets the same numbers as in any other such stack.
    """

    def __init__(self, settings: Sequence[TrainSettings], device: torch.device):
        momentum, weight_decay, l1 = ([getattr(s, k) for s in settings] for k in ("momentum", "weight_decay", "l1"))
        self.plain = all(s.plain_sgd for s in settings)
        self.uses = (any(momentum), any(weight_decay), any(l1))
        self.mu, self.wd, self.l1 = (torch.tensor(v, device=device, dtype=torch.float32)
                                     for v in (momentum, weight_decay, l1))
        self.buffers: list[torch.Tensor | None] | None = None

    def apply(self, weights: list[torch.Tensor], grads: list[torch.Tensor], lr: torch.Tensor) -> None:
        """Update ``weights`` in place from ``grads`` (each ``(A, ...)``, the mean-loss gradient) at ``lr`` ``(A,)``."""
        uses_mu, uses_wd, uses_l1 = self.uses
        for k, (w, g) in enumerate(zip(weights, grads)):
            shape = (-1,) + (1,) * (w.dim() - 1)
            if uses_l1:
                g.add_(w.sign() * self.l1.view(shape))
            if uses_wd:
                g.add_(w * self.wd.view(shape))
            if uses_mu:
                if self.buffers is None:
                    self.buffers = [None] * len(weights)
                if self.buffers[k] is None:
                    self.buffers[k] = g.clone()  # torch.optim.SGD's first step: the buffer is the gradient
                else:
                    self.buffers[k].mul_(self.mu.view(shape)).add_(g)
                g = self.buffers[k]
            w.sub_(g * lr.view(shape))

    def keep(self, keep: list[int]) -> None:
        """Drop the models not in ``keep`` (positions in the current stack)."""
        self.mu, self.wd, self.l1 = self.mu[keep], self.wd[keep], self.l1[keep]
        if self.buffers is not None:
            self.buffers = [None if b is None else b[keep] for b in self.buffers]


class StackedFcn:
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

    def step(self, weights: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor,
             gamma: torch.Tensor | None, in_place: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor] | None]:
        """A :data:`Step`. weights: hidden layers then head, each ``(A, out, in)``; x ``(A, B, ...)``;
        y ``(A, B)``. The logits are valid until the next call."""
        *acts, logits = self._activations(weights, x, "step")
        logp = logits.log_softmax(-1)
        target = y.unsqueeze(-1)
        losses = -logp.gather(-1, target).squeeze(-1)
        weight = None if gamma is None else focal_weight(logp, y, gamma)
        # d(lr * mean cross-entropy)/d(logits) = lr / B * (softmax - one-hot): the LR rides along the backward pass
        delta = logp.exp_().scatter_add_(-1, target, torch.full_like(target, -1, dtype=logp.dtype))
        if weight is not None:
            delta.mul_(weight.unsqueeze(-1))
        delta.mul_(scale.view(-1, 1, 1))
        grads: list[torch.Tensor] = []
        for layer in reversed(range(len(weights))):
            w, below = weights[layer], None
            if layer:  # the gradient below, taken before w moves; threshold_backward is ReLU's backward
                below = torch.bmm(delta, w, out=self._buffer(("delta", layer), w, *acts[layer].shape))
                torch.ops.aten.threshold_backward.grad_input(below, acts[layer], 0, grad_input=below)
            if in_place:
                w.baddbmm_(delta.transpose(1, 2), acts[layer], alpha=-1.0)
            else:
                grads.insert(0, torch.bmm(delta.transpose(1, 2), acts[layer]))
            delta = below
        return losses, logits, None if in_place else grads


class _FeaturesAndLogits(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return features_and_logits(self.net, x)


def _autograd_path(model: nn.Module) -> tuple[Step, Forward]:
    """SGD step and forward pass of M stacked copies of any buffer-free ``model`` (the CNN, an
    FCN with bias): ``vmap`` runs the model's own code on each model's weights; autograd does
    the backward."""
    template = _FeaturesAndLogits(copy.deepcopy(model).to("meta"))
    names = [name for name, _ in template.named_parameters()]
    forward = vmap(lambda params, x: functional_call(template, dict(zip(names, params)), (x,)))

    def step(weights: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor,
             gamma: torch.Tensor | None, in_place: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor] | None]:
        params = [w.detach().requires_grad_() for w in weights]
        logits = forward(params, x)[1]
        losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view_as(y)
        weight = scale[:, None] if gamma is None else focal_weight(logits.detach().log_softmax(-1), y, gamma) * scale[:, None]
        grads = torch.autograd.grad((losses * weight).sum(), params)  # already times scale
        if not in_place:
            return losses.detach(), logits.detach(), list(grads)
        for w, grad in zip(weights, grads):
            w.sub_(grad)
        return losses.detach(), logits.detach(), None

    return step, forward


@torch.no_grad()
def _stacked_stats(forward: Forward, weights: list[torch.Tensor], xs: torch.Tensor, ys: torch.Tensor,
                   src: torch.Tensor) -> tuple[list[float], list[float], list[bool]]:
    """Full-training-set accuracy and mean cross-entropy of each stacked model, and whether any
    of its penultimate units fires on any input: one batched forward pass over chunks of every model's own
    training set ``xs[src[i]]`` (xs ``(K, n, ...)``, src ``(A,)``)."""
    n, a = xs.shape[1], len(src)
    widest = max(xs[0, 0].numel(), max(w.shape[1] for w in weights))
    # near 16 MB activations for a stack of 24; the chunk does not depend on the stack's size, so
    # neither do the numbers
    chunk = max(1, 2**22 // (24 * widest))
    correct = torch.zeros(a, device=xs.device)
    loss = torch.zeros(a, device=xs.device)
    alive = torch.zeros(a, dtype=torch.bool, device=xs.device)
    for start in range(0, n, chunk):
        feats, logits = forward(weights, as_inputs(xs[src, start:start + chunk]))
        y = ys[src, start:start + chunk]
        correct += (logits.argmax(-1) == y).sum(1)
        loss -= logits.log_softmax(-1).gather(-1, y.unsqueeze(-1)).squeeze(-1).sum(1)
        feats = feats.flatten(1)
        alive |= (feats.amax(1) > 0) | (feats.amin(1) < 0)  # much faster than a (M, N d) mask's any()
    return (correct / n).tolist(), (loss / n).tolist(), alive.tolist()


def _bind(model: nn.Module, weights: list[torch.Tensor], i: int) -> None:
    """Make ``model``'s parameters views of the ``i``-th slice of the stacked ``weights``."""
    for p, w in zip(model.parameters(), weights):
        p.data = w[i]


def _check(models: Sequence[nn.Module], data: Sequence[Split], settings: Sequence[TrainSettings],
           seed: Sequence[int]) -> None:
    m = len(models)
    if not (len(data) == len(settings) == len(seed) == m):
        raise ValueError(f"need one Split, settings and seed per model; got {len(data)}, {len(settings)}, {len(seed)} "
                         f"for {m} models")
    if any(s.shared() != settings[0].shared() for s in settings):
        raise ValueError(f"train_batched: the models must share every setting but {', '.join(PER_MODEL)}")
    beyond = settings[0].loop_only()
    if beyond:
        raise ValueError(f"train_batched implements {', '.join(f'train.{k}' for k in beyond)} at the default only "
                         f"(got {', '.join(f'{k}={getattr(settings[0], k)!r}' for k in beyond)}); train such models "
                         f"with lrsc.train.train")
    if any(len(list(model.buffers())) for model in models):
        raise ValueError("train_batched needs buffer-free models (no BatchNorm); train them one at a time")
    n = len(data[0])
    if any(len(d) != n for d in data) or settings[0].batch_size > n:
        raise ValueError(f"need training sets of one size, at least batch_size={settings[0].batch_size}; "
                         f"got {[len(d) for d in data]}")


class _Data:
    """The models' training sets as tables of rows, and the buffers a step's minibatches are gathered into."""

    def __init__(self, data: Sequence[Split], batch_size: int, m: int):
        device, self.n, self.batch_size = data[0].x.device, len(data[0]), batch_size
        distinct = list({id(d.x): d for d in data}.values())
        self.which = torch.tensor([[id(d.x) for d in distinct].index(id(d.x)) for d in data], device=device)
        self.xs, self.ys = torch.stack([d.x for d in distinct]), torch.stack([d.y for d in distinct])  # (K, n, ...)
        # every sample of every distinct set, one row each, and buffers for a step's minibatches
        self.tables = [t.flatten(0, 1) for t in (self.xs, self.ys, torch.stack([d.conflicting for d in distinct]))]
        self.buffers = [t.new_empty(m * batch_size, *t.shape[1:]) for t in self.tables]

    def minibatch(self, rows: torch.Tensor, order: torch.Tensor, start: int) -> list[torch.Tensor]:
        """x, y and the conflicting mask of the models in ``rows``, each ``(A, B, ...)``: the samples at
        ``order[:, start:start + B]`` of each model's own set."""
        flat = (self.which[rows, None] * self.n + order[:, start:start + self.batch_size]).view(-1)
        x, y, conflicting = [torch.index_select(t, 0, flat, out=buf[:len(flat)]).view(len(rows), self.batch_size,
                                                                                      *t.shape[1:])
                             for t, buf in zip(self.tables, self.buffers)]
        return [as_inputs(x), y, conflicting]  # uint8 pixel levels (images on a GPU) become float32 here


class _Stack:
    """The models still training, their stacked weights and per-model state (rows of the full stack)."""

    def __init__(self, models: Sequence[nn.Module], settings: Sequence[TrainSettings], device: torch.device):
        m = len(models)
        self.models, self.active = models, list(range(m))
        self.rows = torch.arange(m, device=device)
        self.weights = [torch.stack([p.detach() for p in ps]) for ps in zip(*(model.parameters() for model in models))]
        for i, model in enumerate(models):
            _bind(model, self.weights, i)
            model.train()
        self.sgd = Sgd(settings, device)

    def drop(self, done: set[int], perms: torch.Tensor) -> torch.Tensor:
        """Take the models in ``done`` off the stack (each keeps its weights); returns ``perms`` of the rest."""
        for i in done:
            for p in self.models[i].parameters():
                p.data = p.data.clone()  # off the stack, which moves on without this model
        keep = [j for j, i in enumerate(self.active) if i not in done]
        self.active = [self.active[j] for j in keep]
        self.rows = torch.tensor(self.active, device=self.rows.device, dtype=torch.long)
        self.weights = [w[keep] for w in self.weights]
        self.sgd.keep(keep)
        for j, i in enumerate(self.active):
            _bind(self.models[i], self.weights, j)
        return perms[keep]


class _Batched:
    """One ``train_batched`` call: the stack, its schedules and stopping rules, stepped to the end."""

    def __init__(self, models: Sequence[nn.Module], data: Sequence[Split], settings: Sequence[TrainSettings],
                 seed: Sequence[int], snapshot: Sequence[Snapshot] | None, snapshot_steps: Sequence[int]):
        m, s0, device = len(models), settings[0], data[0].x.device
        self.models, self.s0 = models, s0
        self.data, self.stack = _Data(data, s0.batch_size, m), _Stack(models, settings, device)
        fcn = StackedFcn() if can_train(models[0], s0) else None
        self.step_fn, self.forward = (fcn.step, fcn.forward) if fcn else _autograd_path(models[0])
        self.gens = [generator(s, "data_order", device) for s in seed]
        self.caps = [s.step_cap for s in settings]
        total = max(cap + s.extra_steps for cap, s in zip(self.caps, settings))
        self.lrs = torch.stack([lr_table(s, total) for s in settings]).to(device)  # (M, steps)
        # plain SGD folds lr / B into the backward pass; otherwise the gradient is the mean's (1 / B)
        self.scales = self.lrs / s0.batch_size if self.stack.sgd.plain else \
            torch.full((m, 1), 1 / s0.batch_size, device=device)
        self.gamma = torch.tensor([s.focal_gamma for s in settings], device=device) \
            if any(s.focal_gamma for s in settings) else None
        self.monitors = [Monitor(d, s.collapse_patience, s.stop_loss, s.extra_steps) for d, s in zip(data, settings)]
        self.recorder = Recorder(m, total, s0.record_every, s0.confident_prob, device, snapshot, snapshot_steps)
        self.results: list[TrainResult | None] = [None] * m
        self.step, self.order = 0, None

    def take_step(self) -> None:
        """One SGD step of every model still in the stack, and its records."""
        stack, step, rows = self.stack, self.step, self.stack.rows
        per_epoch = self.data.n // self.s0.batch_size
        if step % per_epoch == 0:
            self.order = torch.stack([torch.randperm(self.data.n, device=rows.device, generator=self.gens[i])
                                      for i in stack.active])
        x, y, conflicting = self.data.minibatch(rows, self.order, step % per_epoch * self.s0.batch_size)
        scale = self.scales[rows, step if stack.sgd.plain else 0]
        losses, logits, grads = self.step_fn(stack.weights, x, y, scale, None if self.gamma is None else
                                             self.gamma[rows], stack.sgd.plain)
        if grads is not None:
            stack.sgd.apply(stack.weights, grads, self.lrs[rows, step])
        self.step = step = step + 1
        if self.recorder.due(step):
            self.recorder.add(rows, step, losses, logits, y, conflicting, stack.weights)
        self.recorder.snap(step, self.models, stack.active)

    def due(self) -> bool:
        """Whether the stopping rules are checked after this step."""
        step, active = self.step, self.stack.active
        deadlines = {self.monitors[i].deadline for i in active} | {self.caps[i] for i in active}
        return step % self.s0.eval_every == 0 or step in deadlines

    def evaluate(self) -> list[int]:
        """Check every model's stopping rules on its full training set; returns the models that stop now."""
        stack, step, rows = self.stack, self.step, self.stack.rows
        finite = self.recorder.finite(rows, step, self.s0.eval_every)
        for w in stack.weights:
            finite &= torch.isfinite(w.flatten(1)).all(1)
        accs, losses, alive = _stacked_stats(self.forward, stack.weights, self.data.xs, self.data.ys,
                                             self.data.which[rows])
        done = []
        for i, ok, acc, loss, on in zip(stack.active, finite.tolist(), accs, losses, alive):
            reason = self.monitors[i].check(ok, acc, loss, on, step, at_cap=step >= self.caps[i])
            if reason:
                self.results[i] = self.monitors[i].result(reason, step, self.recorder, i)
                done.append(i)
        if done:
            self.order = stack.drop(set(done), self.order)
        return done


def train_batched(models: Sequence[nn.Module], data: Sequence[Split], settings: Sequence[TrainSettings], *,
                  seed: Sequence[int], progress: bool = False, snapshot: Sequence[Snapshot] | None = None,
                  snapshot_steps: Sequence[int] = (), on_done: OnDone | None = None) -> list[TrainResult]:
    """Train M models of one buffer-free architecture at once with SGD, each exactly as ``train`` would.

    Model i is trained in place with ``settings[i]`` on ``data[i]``, in the data order of
    ``seed[i]``, and stops on its own by ``train``'s rules (``snapshot[i]`` is model i's); it
    then leaves the stack (the others go on, and get faster) with its weights, records and
    snapshots as of that step, and ``on_done(i, result)`` is called. The settings may differ
    only in :data:`lrsc.settings.PER_MODEL`. ``data[i]`` are on one device, with equal sizes and
    shapes; models that share a Split share its memory.

    Bias-free FCNs (the stacked kernel) get exactly the numbers ``train`` gives them, provided
    their batch-mates are all plain SGD (no momentum, weight decay or L1) or all not (see
    :class:`Sgd`; ``lrsc.sweep`` groups them so); other models agree with ``train`` to float
    rounding only, and their numbers depend on their batch-mates.
    """
    _check(models, data, settings, seed)
    run = _Batched(models, data, settings, seed, snapshot, snapshot_steps)
    run.recorder.snap(0, models, run.stack.active)
    with tqdm(total=max(s.step_cap for s in settings), desc=f"{len(models)} models", unit="step", leave=False,
              disable=not progress) as bar:
        while run.stack.active:
            run.take_step()
            if not run.due():
                continue
            bar.update(settings[0].eval_every)
            for i in run.evaluate():
                if on_done:
                    on_done(i, run.results[i])
            bar.set_postfix(training=len(run.stack.active))
    return run.results
