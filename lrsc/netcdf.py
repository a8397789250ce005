"""netCDF files as bytes: every dataset lrsc stores is written and read whole, in memory.

A dataset (a run's variables, a collected or derived sweep) is written as classic netCDF-3
(xarray's scipy engine): for files of a few dozen small variables, each with its attributes,
xarray reads it about 40 times as fast as netCDF-4 (0.013 s against 0.49 s for a stored parity
run; 0.02 s against 0.6 s for a collected sweep), and a sweep reads every one of its runs when
it collects, every chapter its sweeps. Where netCDF-3 cannot hold a dataset (a zero-length
dimension, integers beyond 32 bits) it is netCDF-4 (h5netcdf). :func:`engine` tells the two
apart by their first bytes. netCDF-3 keeps 64-bit
integers as 32-bit ones and strings as objects; readers cast to the declared dtype.

Writing to memory first and then to disk with one plain write keeps HDF5 away from
the disk: a full disk is then an ordinary write error (one line, see :mod:`lrsc.store`) rather
than pages of HDF5 diagnostics, and a stored file's bytes can be checked against their checksum
before any of them is read (:meth:`lrsc.store.RunStore.read`). xarray is imported on first use,
so modules that only write stay light to import.
"""
from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import xarray as xr

ENGINE = "h5netcdf"  # netCDF-4, for datasets netCDF-3 cannot hold
CLASSIC = "scipy"  # netCDF-3, for the rest
CLASSIC_MAGIC = b"CDF"  # the first bytes of a netCDF-3 file (an HDF5 file starts with 0x89 "HDF")


def dumps(ds: xr.Dataset) -> bytes:
    """``ds`` as the bytes of a netCDF file: netCDF-3 where it can hold it, else netCDF-4."""
    with _local_writes():
        # scipy writes a zero-length dimension as netCDF-3's record dimension but cannot read such a file back
        if 0 not in ds.sizes.values():
            try:
                return ds.to_netcdf(engine=CLASSIC)
            except (ValueError, TypeError, OverflowError):
                pass  # netCDF-3 cannot hold it (its dtypes or attributes): netCDF-4 below
        buffer = io.BytesIO()
        ds.to_netcdf(buffer, engine=ENGINE)
    return buffer.getvalue()


def _local_writes() -> contextlib.AbstractContextManager:
    """Inside a Dask worker, xarray locks a file it writes through the cluster, by the file's name;
    an in-memory file has none, so its writes take this process's lock instead."""
    try:
        import dask
    except ImportError:
        return contextlib.nullcontext()
    return dask.config.set(scheduler="synchronous")


def engine(head: bytes) -> str:
    """The xarray engine that reads a netCDF file starting with the bytes ``head`` (its first 3 or more)."""
    return CLASSIC if head[:len(CLASSIC_MAGIC)] == CLASSIC_MAGIC else ENGINE


def loads(data: bytes) -> xr.Dataset:
    """The dataset in the bytes ``data`` of a netCDF file, fully in memory."""
    import xarray as xr

    return xr.load_dataset(io.BytesIO(data), engine=engine(data))
