"""Stored datasets as bytes: netCDF-3 where it holds them, netCDF-4 where it cannot, read back the same."""
import numpy as np
import xarray as xr

from lrsc import netcdf


def _run_like() -> xr.Dataset:
    return xr.Dataset({"test_acc": ((), 0.75, {"units": "1", "long_name": "unbiased accuracy", "sesoi": 1.0}),
                       "prune_curve": (("prune_fraction",), np.array([1.0, 0.5, np.nan])),
                       "steps": ((), np.int64(1200)), "converged": ((), True), "reason": ((), "fit")},
                      coords={"prune_fraction": [0.0, 0.5, 0.9]}, attrs={"config": "{}", "hash": "abc"})


def test_a_run_like_dataset_is_netcdf3_and_reads_back_the_same():
    ds = _run_like()
    data = netcdf.dumps(ds)
    assert data[:3] == b"CDF"
    back = netcdf.loads(data)
    assert back.attrs == ds.attrs and back.test_acc.attrs == ds.test_acc.attrs
    np.testing.assert_array_equal(back.prune_curve.values, ds.prune_curve.values)
    assert int(back.steps) == 1200 and bool(back.converged) and str(back.reason.values) == "fit"


def test_what_netcdf3_cannot_hold_is_netcdf4():
    ds = _run_like()
    empty = ds.assign(neuron_csi=(("snapshot",), np.zeros(0)))  # scipy cannot read a zero-length dim back
    data = netcdf.dumps(empty)
    assert data[1:4] == b"HDF" and netcdf.loads(data).sizes["snapshot"] == 0
    big = ds.assign(steps=np.int64(2**40))  # beyond netCDF-3's 32-bit integers
    data = netcdf.dumps(big)
    assert data[1:4] == b"HDF" and int(netcdf.loads(data).steps) == 2**40
