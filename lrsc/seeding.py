"""Derived seeds, one per purpose, so that changing one never shifts another.

As in DomainBed's hparams registry, a purpose's seed is a hash of (seed, purpose):
the dataset draw, the initialisation and the data order of a run are independent
streams, and adding a new purpose later leaves the existing ones unchanged.
"""
import hashlib

import torch


def derive_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for ``purpose``, fixed by ``seed``."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator(seed: int, purpose: str, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded with ``derive_seed(seed, purpose)``."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, purpose))
    return g


def pick_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else the CPU; any other string is used as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_device(device: str) -> None:
    """Raise ConfigError unless ``device`` names a device this machine has (``auto`` always does)."""
    from lrsc.errors import ConfigError

    if device == "auto":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"--device {device!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device {device}: this machine has no CUDA device; use --device cpu (or auto)")
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"--device {device}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    elif dev.type not in ("cpu", "mps"):
        raise ConfigError(f"--device {device!r} is not supported; use auto, cpu, cuda or cuda:N")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {device}: this machine has no MPS device; use --device cpu (or auto)")
