"""The parity dataset (the paper's Fig. 3).

Each input is ``n_core + n_spu + n_noise`` bits. The label ``y`` is the parity of the
core bits, the bias label ``b`` the parity of the (fewer, hence simpler) spurious bits,
and the noise bits are uniform. Bits are encoded as ±1 (``encoding="pm1"``) or 0/1.
"""
import torch

from lrsc.datasets import Info, Split, biased_labels, check_rho, register, unbiased_labels
from lrsc.errors import ConfigError
from lrsc.seeding import generator


def _bits_with_parity(parity: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    """Uniform 0/1 strings of length ``k`` whose parity is ``parity``; shape ``(n, k)``.

    Flipping the last bit where the parity is wrong is a bijection between strings of
    either parity, so the result is uniform over the strings of the asked parity.
    """
    bits = torch.randint(2, (len(parity), k), generator=g)
    wrong = bits.sum(1) % 2 != parity
    bits[:, -1] ^= wrong.long()
    return bits


def _sample(y: torch.Tensor, b: torch.Tensor, n_core: int, n_spu: int, n_noise: int, pm1: bool, g: torch.Generator) -> torch.Tensor:
    x = torch.cat([
        _bits_with_parity(y, n_core, g),
        _bits_with_parity(b, n_spu, g),
        torch.randint(2, (len(y), n_noise), generator=g),
    ], dim=1).float()
    return 2 * x - 1 if pm1 else x


def _check(p: dict) -> Info:
    if not 1 <= p["n_spu"] < p["n_core"]:
        raise ConfigError(f"parity needs 1 <= n_spu < n_core, got n_spu={p['n_spu']}, n_core={p['n_core']}")
    if p["n_noise"] < 0 or p["n_train"] < 1 or p["n_test"] < 1:
        raise ConfigError(f"parity needs n_noise >= 0 and n_train, n_test >= 1, got n_noise={p['n_noise']}, "
                          f"n_train={p['n_train']}, n_test={p['n_test']}")
    check_rho("parity", p["rho"])
    if p["encoding"] not in ("pm1", "01"):
        raise ConfigError(f"parity encoding must be 'pm1' or '01', got {p['encoding']!r}")
    return Info(p["n_train"], (p["n_core"] + p["n_spu"] + p["n_noise"],), 2)


@register("parity", check=_check)
def parity(*, seed: int = 0, n_core: int = 5, n_spu: int = 1, n_noise: int = 10, rho: float = 0.05,
           n_train: int = 10000, n_test: int = 10000, encoding: str = "pm1") -> tuple[Split, Split]:
    """Parity data: inputs of shape ``(n, n_core + n_spu + n_noise)``, two classes.

    ``rho``: fraction of bias-conflicting training samples (exactly ``round(rho*n_train)``).
    ``encoding``: ``"pm1"`` (bits as -1/+1) or ``"01"``.
    """
    d = n_core + n_spu + n_noise
    regions = {name: torch.zeros(d, dtype=torch.bool) for name in ("core", "spurious", "noise")}
    regions["core"][:n_core] = True
    regions["spurious"][n_core:n_core + n_spu] = True
    regions["noise"][n_core + n_spu:] = True

    g = generator(seed, "dataset/parity")
    splits = []
    for labels in (biased_labels(n_train, 2, rho, g), unbiased_labels(n_test, 2, g)):
        y, b = labels
        x = _sample(y, b, n_core, n_spu, n_noise, encoding == "pm1", g)
        splits.append(Split(x, y, b, num_classes=2, num_bias=2, regions=regions))
    return splits[0], splits[1]
