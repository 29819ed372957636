"""Block-wise prediction of images larger than memory (zarr, dask), on one machine or a dask cluster.

The image is cut into blocks whose starts lie on the network's pooling grid; each block is predicted
with the overlap-tile strategy from its own pixels plus a halo of its neighbours', so every block equals
the same region of a whole-image prediction. Objects are found per block with a wider overlap: every
object touching a block's core is cut out of the block's context whole (:func:`split_component` sees
the same crop in every block), and takes as its id one plus the linear index of its first pixel, so the
neighbouring blocks that share an object give it the same id, with no global pass. Objects larger
than that overlap are seen truncated and named differently on either side of a border; each block
reports the ids it disagrees on with its neighbours, for one merge once all blocks are done.
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import torch
from dask.array.overlap import overlap as overlap_of

from napari_unet import devices
from napari_unet.blockwise.block_objects import (
    block_margins,
    classes_block,
    disagreements,
    object_ids_dtype,
    objects_block,
    reach_block,
    trim_rim,
)
from napari_unet.blockwise.config import BlockConfig
from napari_unet.images.axes import Layout, infer_layout
from napari_unet.models.geometry import TileGeometry
from napari_unet.models.model import Model
from napari_unet.objects.config import ObjectConfig
from napari_unet.predict.config import PredictConfig
from napari_unet.predict.job_size import job_size
from napari_unet.predict.object_thresholds import object_config_for
from napari_unet.predict.predictors import batch_predictor, with_test_time_augmentation
from napari_unet.predict.tiling import block_context, predict_tiled
from napari_unet.progress import drain


@dataclass
class LazySegmentation:
    """Result of :func:`segment_lazy`: dask arrays, computed when read (napari shows them lazily).

    Attributes
    ----------
    classes : dask.array.Array
        uint8 classes in the image's spatial shape.
    objects : dask.array.Array or None
        Object ids, unique over the image (one plus the linear index of the object's first pixel:
        unique, not consecutive); uint32, or uint64 for images of 2**32 pixels or more.
    probabilities : dask.array.Array
        (K, *spatial shape) float32 class probabilities.
    border_pairs : dask.array.Array or None
        The ids to merge so that objects larger than the overlap are whole too (see
        :func:`lazy_objects`); compute them with the objects, then merge (as
        :func:`napari_unet.blockwise.zarr_output.iter_segment_zarr` does).
    """

    classes: da.Array
    objects: da.Array | None
    probabilities: da.Array
    border_pairs: da.Array | None = None


def block_chunks(length: int, block: int, least: int) -> tuple[int, ...]:
    """Chunk sizes along an axis: ``block`` pixels each, a last one shorter than ``least`` merged into its neighbour."""
    sizes = [block] * (length // block) + ([length % block] if length % block else [])
    if len(sizes) > 1 and sizes[-1] < least:
        last = sizes.pop()
        sizes[-1] += last
    return tuple(sizes)


def dask_planes(image, layout: Layout) -> da.Array:
    """The image as a dask array of shape (P, C, H, W), like :func:`napari_unet.images.axes.to_planes`."""
    array = image if isinstance(image, da.Array) else da.from_array(image, chunks="auto")
    if layout.channel_axis is None:
        array = array[..., None, :, :]
    else:
        array = da.moveaxis(array, layout.channel_axis, -3)
    array = array.reshape(-1, *array.shape[-3:])  # leading plane axes into one
    if layout.rgb_to_grey:
        array = array[:, :3].astype(np.float32).mean(axis=1, keepdims=True)
    return array


_PREPARED: dict[tuple[int, str], tuple[Model, torch.nn.Module]] = {}
_PREPARED_LOCK = threading.Lock()


def prepared_network(model: Model, device: torch.device) -> torch.nn.Module:
    """The network of a model snapshot (see :func:`segment_lazy`) on ``device`` in evaluation mode, once per process.

    Blocks run in threads or worker processes: each process prepares its own copy once.
    """
    key = (id(model), str(device))
    with _PREPARED_LOCK:
        if key not in _PREPARED:
            net = model.net.eval().to(device)
            if device.type in ("cuda", "cpu"):
                net = net.to(memory_format=torch.channels_last)
            if len(_PREPARED) >= 2:
                _PREPARED.clear()
            _PREPARED[key] = (model, net)
        return _PREPARED[key][1]


_TURNS: dict[str, threading.Lock] = {}


def accelerator_turn(device: torch.device) -> contextlib.AbstractContextManager:
    """A lock that lets one block at a time use a GPU (or another accelerator) of this process; none on a CPU.

    Blocks run on as many threads as there are cores: reading, normalising and finding objects go on in
    parallel, but two blocks on one GPU would each size their tiles from the same free memory and run
    out of it, and the GPU runs one after the other anyway.
    """
    if device.type == "cpu":
        return contextlib.nullcontext()
    with _PREPARED_LOCK:
        return _TURNS.setdefault(str(device), threading.Lock())


def _depth(chunks: tuple[int, ...], depth):
    """Overlap depth along an axis: none where the axis is one block."""
    return depth if len(chunks) > 1 else 0


def _predict_block(block, model, config, ranges, halo_chunks, block_id=None):
    """Probabilities (1, K, h, w) of one block given with its halo of neighbouring pixels."""
    iy, ix = block_id[2], block_id[3]
    geom = TileGeometry(model.config.depth, model.config.padding)
    top, bottom = block_margins(iy, halo_chunks[0], *block_context(geom))
    left, right = block_margins(ix, halo_chunks[1], *block_context(geom))
    device = devices.select_device(config.device)
    planes = model.normalization.apply(np.asarray(block), ranges)
    core = (planes.shape[-2] - top - bottom, planes.shape[-1] - left - right)
    with accelerator_turn(device):  # tiles sized from the free memory of a GPU this block has alone
        tile, batch = job_size(model, device, config, core)
        predictor = batch_predictor(prepared_network(model, device), device, config.amp)
        if config.test_time_augmentation:
            predictor = with_test_time_augmentation(predictor)
        job = predict_tiled(predictor, planes, model.n_classes, geom, tile, batch, context=(top, bottom, left, right))
        return drain(job)


def lazy_objects(probabilities: da.Array, config: ObjectConfig, overlap: int) -> tuple[da.Array, da.Array | None]:
    """Object ids of (P, K, H, W) block-wise probabilities, each block with ``overlap`` pixels of context.

    Every object is found whole in each block it touches (if it spans less than ``overlap``) and takes
    the id of its first pixel in the whole image, so that the blocks agree without a global pass.

    Returns
    -------
    objects : dask.array.Array
        (P, H, W) ids; objects larger than the overlap are cut where they cross a block border.
    border_pairs : dask.array.Array or None
        One element per block (object dtype): the (n, 2) pairs of ids that it and its neighbours give
        the same pixels along their borders, the pieces of cut objects, to merge with
        :func:`napari_unet.blockwise.block_objects.merge_map` once all are computed (as
        :func:`napari_unet.blockwise.zarr_output.iter_segment_zarr` does, in the same pass as the objects). None
        without overlap.
    """
    n_planes, _, height, width = probabilities.shape
    _, _, chunks_y, chunks_x = probabilities.chunks
    confident = probabilities.map_blocks(classes_block, config.threshold, drop_axis=1, dtype=np.uint8)
    # as plane_objects does (the threshold is set: object_config_for chose it)
    grow = config.grows and config.threshold is not None and (config.threshold > 0.5 or config.grow_to < 0.5)
    background = [probabilities[:, 0]] if config.fill or grow else []  # what objects grow along
    if grow:  # and over
        background.append(probabilities.map_blocks(reach_block, config.grow_to, drop_axis=1, dtype=np.uint8))
    dtype = object_ids_dtype(n_planes * height * width)
    rim = min(1, overlap)  # each block also gives its view of the first row and column of its neighbours

    def with_rim(chunks: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(size + sum(block_margins(i, chunks, rim)) for i, size in enumerate(chunks))

    grid = confident.chunks
    viewed = da.map_overlap(
        objects_block,
        confident,
        *background,
        depth={0: 0, 1: _depth(chunks_y, overlap), 2: _depth(chunks_x, overlap)},
        boundary="none",
        trim=False,
        allow_rechunk=False,
        dtype=dtype,
        chunks=(grid[0], with_rim(grid[1]), with_rim(grid[2])),
        meta=np.empty((0, 0, 0), dtype=dtype),
        config=config,
        overlap=overlap,
        grid=grid,
        image_shape=(height, width),
        ids_dtype=dtype,
        rim=rim,
    )
    objects = viewed.map_blocks(trim_rim, rim, grid, chunks=grid, dtype=dtype, meta=np.empty((0, 0, 0), dtype=dtype))
    if rim == 0:
        return objects, None
    rim_depth = {0: 0, 1: _depth(chunks_y, rim), 2: _depth(chunks_x, rim)}
    theirs = overlap_of(objects, depth=rim_depth, boundary="none")
    sure = overlap_of(confident, depth=rim_depth, boundary="none")
    grid_of_blocks = tuple((1,) * len(chunks) for chunks in grid)
    pairs = da.map_blocks(  # an array, so that it is optimised with the objects and shares their tasks
        _pairs_block, viewed, theirs, sure, dtype=object, chunks=grid_of_blocks, meta=np.empty((0, 0, 0), dtype=object)
    )
    return objects, pairs


def _pairs_block(own: np.ndarray, their: np.ndarray, confident: np.ndarray) -> np.ndarray:
    """:func:`disagreements` of one block, as a one-element object array (an element of a dask array)."""
    out = np.empty((1, 1, 1), dtype=object)
    out[0, 0, 0] = disagreements(own[0], their[0], confident[0])
    return out


def lazy_planes(model: Model, image, channel_axis: int | None) -> tuple[Layout, da.Array]:
    """Layout and (P, C, H, W) planes of an image given as a numpy, zarr or dask array."""
    layout = infer_layout(tuple(image.shape), model.in_channels, channel_axis)
    return layout, dask_planes(image, layout)


def segment_lazy(
    model: Model,
    image,
    config: PredictConfig = PredictConfig(),
    blocks: BlockConfig = BlockConfig(),
    objects: bool = True,
    channel_axis: int | None = None,
) -> LazySegmentation:
    """Segment an image of any size block by block, as dask arrays computed only when read.

    Parameters
    ----------
    model : Model
        The trained model (each thread or dask worker uses its own evaluation copy).
    image : numpy.ndarray, zarr.Array or dask.array.Array
        Any layout :func:`napari_unet.predict.segment.segment` accepts.
    config : PredictConfig
        Device, tiles and object settings (per block).
    blocks : BlockConfig
        Block size and the overlap that keeps objects whole across block borders.
    objects : bool
        Also find objects.
    channel_axis : int, optional
        Channel axis of a multichannel image.

    Notes
    -----
    Classes and probabilities equal those of :func:`napari_unet.predict.segment.segment` (both normalise with
    the percentiles of the same regular sample), and so do the objects up to their ids, for objects
    that span less than the overlap (larger ones are cut at block borders until merged with
    ``border_pairs``); packed cells (``ObjectConfig.fill``) and objects grown back over the foreground
    (``ObjectConfig.grow``) grow within each block and its overlap, so a pixel where two meet may go to
    the other one. Compute everything that is wanted in one
    ``dask.compute`` or ``dask.array.store`` call: the network runs once per block.
    """
    model = copy.deepcopy(model)  # a snapshot: the result is that of the model as it is now, whenever computed
    model.net.to("cpu")
    layout, planes = lazy_planes(model, image, channel_axis)
    ranges = model.normalization.ranges(planes)  # reads a regular sample only
    geom = TileGeometry(model.config.depth, model.config.padding)
    context = block_context(geom)
    least = max(*context, blocks.overlap, 1)  # overlaps come from the next block only
    block = geom.alignment * math.ceil(max(blocks.block, least) / geom.alignment)
    n_planes, n_channels, height, width = planes.shape
    chunks_y, chunks_x = block_chunks(height, block, least), block_chunks(width, block, least)
    planes = planes.rechunk((1, n_channels, chunks_y, chunks_x))
    # the model is one task of the graph: each worker fetches it once and keeps its own evaluation copy
    probabilities = da.map_blocks(
        _predict_block,
        overlap_of(
            planes, depth={0: 0, 1: 0, 2: _depth(chunks_y, context), 3: _depth(chunks_x, context)}, boundary="none"
        ),
        dask.delayed(model, pure=True),
        dtype=np.float32,
        chunks=((1,) * n_planes, (model.n_classes,), chunks_y, chunks_x),
        meta=np.empty((0, 0, 0, 0), dtype=np.float32),
        config=config,
        ranges=ranges,
        halo_chunks=(chunks_y, chunks_x),
    )
    classes = probabilities.map_blocks(classes_block, drop_axis=1, dtype=np.uint8)
    instances, border_pairs = None, None
    if objects:
        instances, border_pairs = lazy_objects(probabilities, object_config_for(model, config.objects), blocks.overlap)
    spatial = layout.spatial_shape

    def restore(array: da.Array) -> da.Array:
        return array.reshape(spatial) if array.ndim == 3 else da.moveaxis(array, 1, 0).reshape(-1, *spatial)

    return LazySegmentation(
        classes=restore(classes),
        objects=None if instances is None else restore(instances),
        probabilities=restore(probabilities),
        border_pairs=border_pairs,
    )
