import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_unet.models.geometry import TileGeometry
from napari_unet.models.unet import UNet, UNetConfig
from napari_unet.predict.tiling import plan_axis, predict_tiled, predict_whole
from napari_unet.progress import TileProgress, drain
from tests.conftest import cuda


def _predictor(net, device="cpu", dtype=torch.float64, amp=False):
    def run(batch):
        x = torch.from_numpy(batch).to(device, dtype)
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            return net(x).double().cpu().numpy()

    return run


NETS = {
    (depth, norm): UNet(UNetConfig(depth=depth, base_filters=3, norm=norm)).double().eval()
    for depth in (1, 2, 3)
    for norm in ("none", "batch")
}


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 170),
    width=st.integers(1, 170),
    tile=st.integers(1, 200),
    depth=st.sampled_from([1, 2, 3]),
    norm=st.sampled_from(["none", "batch"]),
    batch=st.integers(1, 5),
    planes=st.integers(1, 2),
)
def test_tiled_prediction_equals_one_whole_pass(height, width, tile, depth, norm, batch, planes):
    """The overlap-tile invariant: stitched tiles equal a single pass over the mirrored image."""
    net = NETS[(depth, norm)]
    image = np.random.default_rng(height * 1000 + width).random((planes, 1, height, width))
    geom = TileGeometry(depth)
    tiled = drain(
        predict_tiled(
            _predictor(net), image, 2, geom, tile=tile, batch_size=batch, out=np.empty((planes, 2, height, width))
        )
    )
    whole = predict_whole(_predictor(net), image, geom)
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-10)


def test_rectangular_tiles_and_progress():
    net = NETS[(2, "none")]
    image = np.random.default_rng(0).random((1, 1, 90, 300))
    records = []
    job = predict_tiled(_predictor(net), image, 2, TileGeometry(2), tile=(60, 100), batch_size=3)
    result = drain(job, records.append)
    assert isinstance(records[-1], TileProgress)
    assert records[-1].done == records[-1].total > 3
    np.testing.assert_allclose(result, predict_whole(_predictor(net), image, TileGeometry(2)), atol=1e-5)


def test_tiles_start_on_the_pooling_grid():
    geom = TileGeometry(4)
    plan = plan_axis(5000, 572, geom)
    assert all(o % 16 == 0 for o in plan.offsets)
    assert plan.offsets[-1] + plan.out >= 5000
    assert plan.pad_before == 92


@settings(max_examples=200, deadline=None)
@given(length=st.integers(1, 20000), tile=st.integers(1, 4500), depth=st.sampled_from([2, 3, 4]))
def test_tiles_are_the_smallest_that_need_no_more_of_them(length, tile, depth):
    from napari_unet.predict.tiling import _offsets

    geom = TileGeometry(depth)
    plan = plan_axis(length, tile, geom)
    largest = geom.valid_tile(tile)
    assert plan.tile <= max(largest, geom.valid_tile(length + 2 * geom.halo))
    assert all(o % geom.alignment == 0 for o in plan.offsets) and plan.offsets[-1] + plan.out >= length
    assert plan.pad_after >= geom.halo
    if geom.output_size(largest) < length:
        assert len(plan.offsets) == len(_offsets(length, largest, geom))
        smaller = plan.tile - 2**depth  # the next valid tile below
        if geom.output_size(smaller) >= geom.alignment:
            assert len(_offsets(length, smaller, geom)) > len(plan.offsets)


def test_8192_pixels_in_five_tiles_of_1836():
    plan = plan_axis(8192, 2140, TileGeometry(4))
    assert (plan.tile, len(plan.offsets)) == (1836, 5)
    assert plan.offsets[-1] + plan.out - 8192 < 16


def test_small_image_gets_a_small_tile():
    plan = plan_axis(10, 2140, TileGeometry(4))
    assert plan.offsets == (0,) and plan.tile == 204


def test_same_padding_tiles_approximately():
    cfg = UNetConfig(depth=2, base_filters=3, padding="same", norm="none")
    net = UNet(cfg).double().eval()
    image = np.random.default_rng(1).random((1, 1, 70, 90))
    geom = TileGeometry(2, "same")
    tiled = drain(predict_tiled(_predictor(net), image, 2, geom, tile=40))
    assert tiled.shape == (1, 2, 70, 90) and np.isfinite(tiled).all()


@cuda
@pytest.mark.gpu
@pytest.mark.parametrize("amp", [False, True])
def test_tiling_invariant_on_gpu(amp, monkeypatch):
    # cuDNN runs float32 convolutions as TF32 by default (10-bit mantissa, ~1e-3 relative error that
    # depends on the algorithm chosen per tile size); the invariant is checked in true float32
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    net = UNet(UNetConfig(depth=4, base_filters=16, norm="batch")).cuda().eval()
    image = np.random.default_rng(0).random((2, 1, 300, 517)).astype(np.float32)
    geom = TileGeometry(4)
    run = _predictor(net, "cuda", torch.float32, amp)
    tiled = drain(predict_tiled(run, image, 2, geom, tile=252, batch_size=4))
    whole = predict_whole(run, image, geom)
    scale = np.abs(whole).max()
    np.testing.assert_allclose(tiled, whole, atol=(2e-2 if amp else 1e-3) * scale)
