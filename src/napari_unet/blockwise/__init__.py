"""Images larger than memory: blocks with halos, objects whole across blocks, zarr output, a dask cluster."""
