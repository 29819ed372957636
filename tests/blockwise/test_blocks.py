"""Block-wise prediction equals the whole-image prediction: probabilities, classes and objects."""

from __future__ import annotations

from dataclasses import replace

import dask
import dask.array as da
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_unet import BlockConfig, InputError, PredictConfig, new_model, segment, segment_lazy
from napari_unet.blockwise.block_objects import merge_map, relabel
from napari_unet.blockwise.blocks import block_chunks, lazy_objects
from napari_unet.images.synthetic import SyntheticConfig, synthetic_nuclei
from napari_unet.models.starting import load_starting_model
from napari_unet.objects.classes import probabilities_to_classes
from napari_unet.objects.config import ObjectConfig
from napari_unet.objects.instances import classes_to_objects
from tests.conftest import FLOAT32_AGREE, tissue_probabilities

CPU = PredictConfig(device="cpu")


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label images have the same objects, whatever their ids."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = set(zip(a[a > 0].tolist(), b[a > 0].tolist(), strict=True))
    return len(pairs) == len(np.unique(a[a > 0])) == len(np.unique(b[b > 0]))


@pytest.fixture(scope="module")
def starting():
    return load_starting_model()


@pytest.fixture(scope="module")
def cells():
    return synthetic_nuclei(SyntheticConfig(shape=(300, 420)), seed=1)[0]


def crossing_objects(objects: np.ndarray, chunks: tuple[tuple[int, ...], ...]) -> int:
    """Objects with pixels on both sides of an inner block border."""
    count = 0
    for axis, sizes in enumerate(chunks):
        for border in np.cumsum(sizes)[:-1]:
            before = np.take(objects, border - 1, axis=axis)
            after = np.take(objects, border, axis=axis)
            count += len(np.unique(before[(before > 0) & (before == after)]))
    return count


def test_blocks_equal_the_whole_image(starting, cells):
    reference = segment(starting, cells, CPU)
    lazy = segment_lazy(starting, da.from_array(cells, chunks=(100, 170)), CPU, BlockConfig(block=128, overlap=48))
    probabilities, classes, objects = da.compute(lazy.probabilities, lazy.classes, lazy.objects)
    assert lazy.classes.chunks == ((128, 172), (128, 128, 164))
    np.testing.assert_allclose(probabilities, reference.probabilities, **FLOAT32_AGREE)
    np.testing.assert_array_equal(classes, reference.classes)
    assert crossing_objects(objects, lazy.classes.chunks) >= 10  # the borders cut objects...
    assert same_partition(objects, reference.objects)  # ...that come out whole, as in memory
    assert objects.dtype == np.uint32


@pytest.mark.parametrize("depth", [2, 4])
def test_block_context_covers_the_receptive_field_at_other_depths(cells, depth):
    model = new_model("light", ["nucleus"], depth=depth, base_filters=4, seed=0)
    image = cells[:200, :260]
    reference = segment(model, image, CPU, objects=False)
    lazy = segment_lazy(model, image, CPU, BlockConfig(block=64, overlap=0), objects=False)
    np.testing.assert_allclose(lazy.probabilities.compute(), reference.probabilities, rtol=0, atol=1e-5)


def test_stacks_and_rgb_images(starting, cells):
    stack = np.stack([cells[:150, :200], cells[150:, :200], cells[:150, 200:400]])
    rgb = np.repeat(cells[..., None], 3, axis=-1)
    for image in (stack, rgb):
        reference = segment(starting, image, CPU)
        lazy = segment_lazy(starting, image, CPU, BlockConfig(block=96, overlap=48))
        classes, objects = da.compute(lazy.classes, lazy.objects)
        assert classes.shape == reference.classes.shape
        np.testing.assert_array_equal(classes, reference.classes)
        assert same_partition(objects, reference.objects)


def test_object_ids_are_unique_across_planes(starting, cells):
    stack = np.stack([cells[:150, :200]] * 2)
    objects = segment_lazy(starting, stack, CPU, BlockConfig(block=96, overlap=48)).objects.compute()
    assert not set(np.unique(objects[0])[1:]) & set(np.unique(objects[1])[1:])


def test_the_model_passed_in_is_left_alone(starting, cells):
    starting.net.train()
    segment_lazy(starting, cells[:100, :100], CPU).classes.compute()
    assert starting.net.training
    assert next(starting.net.parameters()).device.type == "cpu"


def test_block_chunks_merge_a_short_last_block():
    assert block_chunks(300, 128, 60) == (128, 172)
    assert block_chunks(300, 128, 30) == (128, 128, 44)
    assert block_chunks(100, 128, 60) == (100,)
    assert block_chunks(256, 128, 60) == (128, 128)


@pytest.mark.parametrize("settings", [{"block": 16}, {"block": 128, "overlap": 100}, {"overlap": -1}])
def test_bad_block_settings_say_what_is_allowed(settings):
    with pytest.raises(InputError, match=r"blocks|overlap"):
        BlockConfig(**settings)


@settings(max_examples=15, deadline=None)
@given(
    height=st.integers(1, 150),
    width=st.integers(1, 150),
    block=st.sampled_from([64, 72, 96]),
    overlap=st.integers(0, 32),
    seed=st.integers(0, 100),
)
def test_any_shape_and_block_size_gives_the_whole_image_probabilities(height, width, block, overlap, seed):
    model = new_model("light", ["nucleus"], depth=2, base_filters=4, seed=0)
    image = np.random.default_rng(seed).gamma(2.0, 50.0, size=(height, width)).astype(np.float32)
    reference = segment(model, image, CPU, objects=False)
    lazy = segment_lazy(model, image, CPU, BlockConfig(block=block, overlap=overlap))
    probabilities, objects = da.compute(lazy.probabilities, lazy.objects)
    np.testing.assert_allclose(probabilities, reference.probabilities, rtol=0, atol=1e-5)
    assert objects.shape == (height, width)


def test_the_result_is_that_of_the_model_when_asked_for(cells):
    model = new_model("light", ["nucleus"], depth=2, base_filters=4, seed=0)
    image = cells[:100, :100]
    before = segment_lazy(model, image, CPU, objects=False)
    first = before.probabilities.compute()
    with torch.no_grad():
        for parameter in model.net.parameters():
            parameter.add_(0.1)
    np.testing.assert_allclose(before.probabilities.compute(), first, **FLOAT32_AGREE)  # a snapshot, not the live model
    after = segment_lazy(model, image, CPU, objects=False).probabilities.compute()
    np.testing.assert_allclose(after, segment(model, image, CPU, objects=False).probabilities, atol=1e-5)
    assert np.abs(after - first).max() > 1e-3


def test_test_time_augmentation_block_by_block_equals_the_whole_image(starting, cells):
    config = PredictConfig(device="cpu", test_time_augmentation=True)
    image = cells[:200, :230]
    reference = segment(starting, image, config, objects=False)
    lazy = segment_lazy(starting, image, config, BlockConfig(block=96, overlap=0), objects=False)
    np.testing.assert_allclose(lazy.probabilities.compute(), reference.probabilities, rtol=0, atol=1e-6)


def majority_agreement(reference: np.ndarray, other: np.ndarray) -> float:
    """Fraction of pixels whose id in ``other`` is the one most of their ``reference`` object has."""
    pairs, counts = np.unique(np.stack([reference.ravel(), other.ravel()]), axis=1, return_counts=True)
    best = {}
    for (a, _), n in zip(pairs.T, counts, strict=True):
        best[a] = max(best.get(a, 0), n)
    return sum(best.values()) / reference.size


def test_packed_cells_block_by_block():
    cells, probabilities = tissue_probabilities((300, 420), 120, seed=2)
    lazy_probabilities = da.from_array(probabilities[None], chunks=(1, 2, 100, 170))
    classes = probabilities_to_classes(probabilities)
    for shape in ("connected", "packed"):
        config = ObjectConfig.for_shape(shape, threshold=0.9)
        reference = classes_to_objects(classes, config, probabilities)
        lazy = lazy_objects(lazy_probabilities, config, overlap=64)[0]
        objects = lazy.compute()[0]
        assert crossing_objects(objects, lazy.chunks[1:]) >= 20
        if shape == "connected":
            assert same_partition(objects, reference)
        else:  # the same cells; pixels on a membrane may go to the other cell (ties of the watershed)
            assert (objects > 0).all()
            assert len(np.unique(objects)) == len(np.unique(reference)) >= 0.95 * len(np.unique(cells))
            assert majority_agreement(reference, objects) > 0.995


def nuclei_probabilities(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Touching synthetic nuclei and (2, H, W) probabilities, sure of their cores and unsure at their rims."""
    from scipy import ndimage
    from skimage.segmentation import find_boundaries

    _, truth = synthetic_nuclei(SyntheticConfig(shape=(300, 420), density=0.3, touching=0.6), seed=seed)
    inside = (truth > 0) & ~find_boundaries(truth, mode="inner")
    objects = np.clip(ndimage.gaussian_filter(inside.astype(np.float32), 1.2) * 1.15, 0, 1)
    return truth, np.stack([1 - objects, objects]).astype(np.float32)


@pytest.mark.parametrize("grow_to", [0.5, 0.3])
def test_grown_objects_block_by_block(grow_to):
    _, probabilities = nuclei_probabilities(seed=3)
    lazy_probabilities = da.from_array(probabilities[None], chunks=(1, 2, 100, 170))
    classes = probabilities_to_classes(probabilities)
    config = ObjectConfig.for_shape("connected", threshold=0.9, grow=True, grow_to=grow_to)
    reference = classes_to_objects(classes, config, probabilities)
    assert (reference > 0).sum() > (classes_to_objects(classes, replace(config, grow=False), probabilities) > 0).sum()
    objects = lazy_objects(lazy_probabilities, config, overlap=48)[0].compute()[0]
    assert crossing_objects(objects, ((100, 100, 100), (170, 250))) >= 5
    # the same objects over the same pixels; where two meet, a pixel may go to the other (ties of the watershed)
    assert np.array_equal(objects > 0, reference > 0)
    assert len(np.unique(objects)) == len(np.unique(reference))
    assert majority_agreement(reference, objects) > 0.998


def test_objects_larger_than_the_overlap_are_merged_across_block_borders():
    _, probabilities = tissue_probabilities((300, 420), 40, seed=2)  # cells of about 50 pixels
    lazy_probabilities = da.from_array(probabilities[None], chunks=(1, 2, 100, 170))
    classes = probabilities_to_classes(probabilities)
    for shape in ("connected", "round"):
        config = ObjectConfig.for_shape(shape, threshold=0.9)
        reference = classes_to_objects(classes, config, probabilities)
        lazy, pairs = lazy_objects(lazy_probabilities, config, overlap=8)
        cut, border_pairs = dask.compute(lazy, pairs)  # one pass: the pairs share the objects' tasks
        merged = relabel(cut[0], *merge_map(list(border_pairs.ravel())))
        if shape == "connected":
            assert len(np.unique(cut)) > len(np.unique(reference)) + 20  # cut at the borders...
            assert same_partition(merged, reference)  # ...and whole again
        else:  # cells split differently from a truncated view may stay split or merge
            assert majority_agreement(reference, merged) > 0.99


def test_merge_map_follows_chains_to_the_smallest_id():
    keys, roots = merge_map([np.array([[9, 4], [4, 7]], np.uint64), np.array([[20, 30]], np.uint64)])
    assert keys.tolist() == [7, 9, 30] and roots.tolist() == [4, 4, 20]
    ids = np.array([[0, 9, 7], [4, 30, 5]], np.uint32)
    assert relabel(ids, keys, roots).tolist() == [[0, 4, 4], [4, 20, 5]]
    assert relabel(ids, *merge_map([])) is ids


def test_blocks_take_turns_on_an_accelerator_but_not_on_the_cpu():
    import contextlib

    import torch

    from napari_unet.blockwise.blocks import accelerator_turn

    assert isinstance(accelerator_turn(torch.device("cpu")), contextlib.nullcontext)
    gpu = accelerator_turn(torch.device("cuda", 0))
    assert gpu is accelerator_turn(torch.device("cuda", 0))  # one lock per device, shared by all blocks
    assert gpu is not accelerator_turn(torch.device("cuda", 1))
    with gpu:
        assert not gpu.acquire(blocking=False)  # a second block waits for its turn


@pytest.mark.gpu
def test_blocks_on_a_gpu_take_turns_and_agree_with_the_whole_image(starting, tmp_path):
    """Four threads of blocks share one GPU (the lock): no block runs out of memory, and the classes
    agree with the in-memory prediction (the fused bf16 copy there, the network in autocast here, so a
    few pixels near class borders may differ); objects cut by block borders are merged."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from napari_unet.blockwise.zarr_output import iter_segment_zarr
    from napari_unet.progress import drain

    zarr = pytest.importorskip("zarr")
    image = np.tile(synthetic_nuclei(SyntheticConfig(shape=(1024, 1024)), seed=2)[0], (3, 3))
    config = PredictConfig(device="cuda")
    reference = segment(starting, image, config)
    outputs = {kind: tmp_path / f"cells_{kind}.zarr" for kind in ("segmentation", "objects")}
    with dask.config.set(scheduler="threads", num_workers=4):
        drain(iter_segment_zarr(starting, image, outputs, config, blocks=BlockConfig(block=1024, overlap=64)))
    classes = zarr.open_array(outputs["segmentation"], mode="r")[:]
    objects = zarr.open_array(outputs["objects"], mode="r")[:]
    assert (classes == reference.classes).mean() > 0.999
    assert crossing_objects(objects, ((1024,) * 3,) * 2) > 0  # objects cross borders, one id each
    n_whole, n_blocks = len(np.unique(reference.objects)), len(np.unique(objects))
    assert abs(n_blocks - n_whole) <= 0.01 * n_whole
