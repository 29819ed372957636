"""Images in and out: axes and channels, normalisation, image and label files, lazy zarr and TIFF, synthetic data."""
