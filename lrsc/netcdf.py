"""netCDF files as bytes: every dataset lrsc stores is written and read whole, in memory.

Writing to memory first (h5netcdf) and then to disk with one plain write keeps HDF5 away from
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

ENGINE = "h5netcdf"


def dumps(ds: xr.Dataset, groups: dict[str, xr.Dataset] | None = None) -> bytes:
    """``ds`` as the bytes of a netCDF file, with each of ``groups`` (``{name: dataset}``) as a group."""
    buffer = io.BytesIO()
    with _local_writes():
        ds.to_netcdf(buffer, engine=ENGINE)
        for name, group in (groups or {}).items():
            group.to_netcdf(buffer, group=name, mode="a", engine=ENGINE)
    return buffer.getvalue()


def _local_writes() -> contextlib.AbstractContextManager:
    """Inside a Dask worker, xarray locks a file it writes through the cluster, by the file's name;
    an in-memory file has none, so its writes take this process's lock instead."""
    try:
        import dask
    except ImportError:
        return contextlib.nullcontext()
    return dask.config.set(scheduler="synchronous")


def loads(data: bytes, group: str | None = None) -> xr.Dataset:
    """The dataset (or its ``group``) in the bytes ``data`` of a netCDF file, fully in memory."""
    import xarray as xr

    return xr.load_dataset(io.BytesIO(data), engine=ENGINE, group=group)
