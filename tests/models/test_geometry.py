import pytest

from napari_unet.models import geometry


def test_paper_geometry():
    assert geometry.output_size(572, 4) == 388
    assert geometry.halo(4) == 92
    assert geometry.alignment(4) == 16


def test_valid_sizes_are_16k_plus_124_at_depth_4():
    valid = [n for n in range(100, 1200) if geometry.is_valid_input(n, 4)]
    assert valid[0] == 188
    assert all((n - 124) % 16 == 0 for n in valid)
    assert valid == list(range(188, 1200, 16))


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_halo_is_constant_for_every_valid_size(depth):
    sizes = [n for n in range(1, 800) if geometry.is_valid_input(n, depth)][:10]
    assert sizes, "no valid size found"
    assert {n - geometry.output_size(n, depth) for n in sizes} == {2 * geometry.halo(depth)}


def test_invalid_size_raises():
    with pytest.raises(ValueError):
        geometry.output_size(573, 4)
    with pytest.raises(ValueError):
        geometry.output_size(10, 4)


def test_valid_input_size_rounds_up_and_down():
    assert geometry.valid_input_size(500, 4) == 508
    assert geometry.valid_input_size_at_most(500, 4) == 492
    with pytest.raises(ValueError):
        geometry.valid_input_size_at_most(50, 4)


def test_same_padding_keeps_size():
    assert geometry.output_size(256, 4, "same") == 256
    assert geometry.halo(4, "same") == 0


def test_tile_for_memory_grows_with_budget_and_shrinks_with_batch():
    small = geometry.tile_for_memory(1e8, 4, 64)
    large = geometry.tile_for_memory(1e10, 4, 64)
    batched = geometry.tile_for_memory(1e10, 4, 64, batch_size=8)
    assert small < batched < large
    for size in (small, large, batched):
        assert geometry.is_valid_input(size, 4)
    assert geometry.tile_for_memory(0, 4, 64) == geometry.smallest_tile(4)
