"""Objects block by block (blockwise/block_objects.py): ids that agree across blocks, and the merge of cut ones."""

import numpy as np
import pytest
from scipy import ndimage

from napari_unet.blockwise.block_objects import (
    block_margins,
    block_starts,
    classes_block,
    disagreements,
    fill_ids,
    merge_map,
    object_ids_dtype,
    objects_block,
    relabel,
    trim_rim,
)
from napari_unet.objects.config import ObjectConfig
from napari_unet.objects.instances import fill_plane


def test_block_starts_and_the_context_each_block_received():
    chunks = (30, 30, 25)
    assert block_starts(chunks) == [0, 30, 60]
    assert [block_margins(i, chunks, 8) for i in range(3)] == [(0, 8), (8, 8), (8, 0)]
    assert block_margins(1, chunks, 8, after=12) == (8, 12)
    assert block_margins(0, (50,), 8) == (0, 0)  # a single block has no neighbours


def test_object_ids_are_32_bit_while_the_linear_indices_fit():
    assert object_ids_dtype(2**32 - 2) == np.uint32
    assert object_ids_dtype(2**32 - 1) == np.uint64


def test_classes_of_a_block_keep_only_confident_object_pixels():
    probabilities = np.array([[[0.9, 0.4, 0.2, 0.02]]], np.float32)
    probabilities = np.stack([probabilities, 1 - probabilities], axis=1)  # (1, 2, 1, 4): background, object
    assert classes_block(probabilities).tolist() == [[[0, 2, 2, 2]]]
    assert classes_block(probabilities, threshold=0.95).tolist() == [[[0, 0, 0, 2]]]
    assert classes_block(probabilities, threshold=0.5).tolist() == [[[0, 2, 2, 2]]]  # 0.5 or less: the argmax


def test_an_object_across_a_block_border_gets_the_same_id_in_both_blocks():
    """Each block names an object one plus the linear index of its first pixel, whatever block it is seen from."""
    height, width, overlap = 40, 60, 12
    classes = np.zeros((1, height, width), np.uint8)
    classes[0, 10:20, 25:36] = 2  # crosses the border at column 30, within the overlap
    classes[0, 28:33, 3:9] = 2  # in the first block only
    grid = ((1,), (height,), (30, 30))
    config = ObjectConfig.for_shape("connected", min_size=1)
    cores = []
    for ix, (start, stop) in enumerate([(0, 30 + overlap), (30 - overlap, 60)]):
        context = classes[:, :, start:stop]
        ids = objects_block(
            context,
            config=config,
            overlap=overlap,
            grid=grid,
            image_shape=(height, width),
            ids_dtype=np.dtype(np.uint32),
            block_id=(0, 0, ix),
        )
        cores.append(ids[0])
    whole = np.concatenate(cores, axis=1)
    assert whole.shape == (height, width)
    crossing = 10 * width + 25 + 1
    assert np.unique(whole[10:20, 25:36]).tolist() == [crossing]
    assert np.unique(whole[28:33, 3:9]).tolist() == [28 * width + 3 + 1]
    assert set(np.unique(whole).tolist()) == {0, crossing, 28 * width + 3 + 1}


def test_the_rim_is_trimmed_back_to_the_core():
    grid = ((1,), (20, 20), (20,))
    block = np.arange(1 * 24 * 20).reshape(1, 24, 20)  # the first block of two along y, with a rim of 4 below
    assert trim_rim(block, 4, grid, block_id=(0, 0, 0)).shape == (1, 20, 20)
    np.testing.assert_array_equal(trim_rim(block, 4, grid, block_id=(0, 0, 0)), block[:, :20])


def test_disagreements_pair_the_ids_two_blocks_give_one_confident_object():
    own = np.array([[5, 5, 0, 7], [5, 5, 0, 7]], np.uint64)
    theirs = np.array([[9, 9, 0, 7], [9, 0, 3, 7]], np.uint64)
    confident = np.array([[2, 2, 2, 2], [0, 2, 2, 2]], np.uint8)
    assert disagreements(own, theirs, confident).tolist() == [[5, 9]]  # once, however many pixels
    assert disagreements(own, own, confident).shape == (0, 2)


def test_merge_map_joins_chains_of_pairs_into_the_smallest_id():
    pairs = [np.array([[5, 3], [9, 5]], np.uint64), np.array([[7, 2]], np.uint64), np.zeros((0, 2), np.uint64)]
    keys, roots = merge_map(pairs)
    assert dict(zip(keys.tolist(), roots.tolist(), strict=True)) == {5: 3, 7: 2, 9: 3}
    ids = np.array([[0, 3, 5], [9, 7, 11]], np.uint64)
    assert relabel(ids, keys, roots).tolist() == [[0, 3, 3], [3, 2, 11]]
    empty = merge_map([])
    assert relabel(ids, *empty) is ids


@pytest.mark.parametrize("offset", [0, 2**40])
def test_fill_ids_grows_any_ids_as_fill_plane_grows_small_ones(offset):
    rng = np.random.default_rng(0)
    background = ndimage.gaussian_filter(rng.random((40, 50)), 2).astype(np.float32)
    small = np.zeros((40, 50), np.int32)
    small[5, 5], small[30, 40], small[20, 10] = 1, 2, 3
    ids = np.where(small > 0, small.astype(np.uint64) * 1000 + offset, 0).astype(np.uint64)
    grown = fill_ids(ids, background)
    expected = fill_plane(small, background)
    np.testing.assert_array_equal(grown, np.where(expected > 0, expected.astype(np.uint64) * 1000 + offset, 0))
