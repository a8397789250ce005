"""How fast lrsc trains: batched vs one-at-a-time training, achieved FLOP/s, the data path, and
the one-model loop's overhead over a plain torch loop.

    python -m lrsc.bench [--quick] [--threads N] [--repeats R] [--device DEVICE] [--json FILE]

Every ratio is measured in this process, both sides at the same number of threads (torch's
default, all cores, unless ``--threads``) and on the same device (``--device``, default the
CPU; every tensor and model is built there, and on CUDA the clock is read only after
``torch.cuda.synchronize()``). Each training case runs R rounds, one-at-a-time and batched
in turn, and reports the median time of each side, so that a burst of load from elsewhere on
a shared machine moves one round, not the result; the spread of the per-round ratios is
reported beside it. Training runs a fixed number of steps and one evaluation, at the end, in
both paths (``eval_every = max_steps``). The cases are FCNs (parity and Colored-MNIST sized)
and the VGG11-like CNN at two widths on Colored-MNIST-sized inputs; the one-at-a-time CNN
step is also timed with model and inputs in ``torch.channels_last``.

Modules: :mod:`~lrsc.bench.cases` (training cases and their timing), :mod:`~lrsc.bench.profile`
(the profiled batched step, the hot product), :mod:`~lrsc.bench.datapath` (minibatch fetching),
:mod:`~lrsc.bench.overhead` (the one-model loop against plain torch), :mod:`~lrsc.bench.runner`
(all of them, rows and summary), :mod:`~lrsc.bench.stored` (results kept between book builds).
"""
from lrsc.bench.cases import Case, default_cases
from lrsc.bench.runner import format_table, run

__all__ = ["Case", "default_cases", "format_table", "run"]
