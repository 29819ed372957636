import numpy as np
import pytest

from napari_unet.images.normalization import Normalization


def test_percentiles_map_to_zero_and_one():
    planes = np.arange(1000, dtype=np.uint16).reshape(1, 1, 10, 100)
    out = Normalization(0, 100).apply(planes)
    assert out.dtype == np.float32
    assert out.min() == 0 and np.isclose(out.max(), 1)


def test_channels_are_normalised_separately():
    rng = np.random.default_rng(0)
    planes = np.stack([rng.normal(10, 1, (2, 32, 32)), rng.normal(1000, 50, (2, 32, 32))], axis=1)
    out = Normalization().apply(planes)
    assert abs(np.median(out[:, 0]) - np.median(out[:, 1])) < 0.1


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64])
def test_any_dtype_and_constant_images(dtype):
    out = Normalization().apply(np.full((1, 1, 8, 8), 7, dtype=dtype))
    assert np.isfinite(out).all() and (out == 0).all()


def test_nan_and_inf_are_ignored_and_zeroed():
    planes = np.random.default_rng(0).random((1, 1, 16, 16))
    planes[0, 0, 0, :4] = [np.nan, np.inf, -np.inf, np.nan]
    out = Normalization().apply(planes)
    assert np.isfinite(out).all()
    assert (out[0, 0, 0, :4] == 0).all()


def test_bad_percentiles_are_refused():
    with pytest.raises(ValueError):
        Normalization(50, 10)


def test_large_images_are_sampled_on_the_same_grid_in_numpy_and_dask():
    import dask.array as da

    from napari_unet.images.normalization import MAX_SAMPLES, sample_stride

    rng = np.random.default_rng(0)
    planes = rng.gamma(2.0, 100.0, size=(1, 1, 2100, 2100)).astype(np.float32)
    assert planes.size > MAX_SAMPLES and sample_stride(planes.shape) == 2
    norm = Normalization()
    assert norm.ranges(planes) == norm.ranges(da.from_array(planes, chunks=(1, 1, 512, 512)))
    assert norm.ranges(planes) != norm.ranges(planes[:, :, :1000, :1000])


def test_integer_images_with_odd_ranges_still_give_finite_values():
    planes = np.arange(24, dtype=np.uint16).reshape(1, 1, 4, 6)
    norm = Normalization()
    assert np.isfinite(norm.apply(planes, [(np.nan, np.nan)])).all()  # a range from elsewhere, unusable
    assert np.isfinite(norm.apply(planes, [(3.0, 3.0 + 1e-12)])).all()  # a nearly flat image
    assert np.isfinite(norm.apply(np.full((1, 1, 4, 6), np.inf, dtype=np.float32))).all()
