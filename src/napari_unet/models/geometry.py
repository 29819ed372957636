"""Geometry of the valid-convolution U-Net: output sizes, halo, valid input sizes, tiles on the pooling grid."""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Each level of the network holds two 3x3 convolutions; unpadded, they take 4 pixels off a side length.
CONV_SHRINK = 4


def output_size(input_size: int, depth: int, padding: str = "valid") -> int:
    """Side length of the network output for a given input side length.

    Parameters
    ----------
    input_size : int
        Side length of the input tile, in pixels.
    depth : int
        Number of 2x2 max-pooling steps of the contracting path.
    padding : {"valid", "same"}
        "valid" is the paper's unpadded convolution; "same" keeps the size (ablation only).

    Returns
    -------
    int
        The output side length.

    Raises
    ------
    ValueError
        If the size is not a valid input: every pooled feature map must have an even side length and
        the output must be at least one pixel.
    """
    if padding == "same":
        if input_size <= 0 or input_size % 2**depth:
            raise ValueError(f"input size {input_size} is not a positive multiple of {2**depth}")
        return input_size
    size = input_size
    for _ in range(depth):
        size -= CONV_SHRINK
        if size <= 0 or size % 2:
            raise ValueError(f"input size {input_size} is not valid for a depth-{depth} U-Net")
        size //= 2
    size -= CONV_SHRINK
    if size <= 0:
        raise ValueError(f"input size {input_size} is too small for a depth-{depth} U-Net")
    for _ in range(depth):
        size = 2 * size - CONV_SHRINK
    if size <= 0:
        raise ValueError(f"input size {input_size} is too small for a depth-{depth} U-Net")
    return size


def is_valid_input(input_size: int, depth: int, padding: str = "valid") -> bool:
    """Whether ``input_size`` is a valid input side length."""
    try:
        output_size(input_size, depth, padding)
    except ValueError:
        return False
    return True


def valid_input_size(at_least: int, depth: int, padding: str = "valid") -> int:
    """The smallest valid input side length that is at least ``at_least``.

    Valid sizes form an arithmetic sequence with step ``2**depth`` (16k + 124 at depth 4), so the search
    is short.
    """
    size = max(int(at_least), 1)
    while not is_valid_input(size, depth, padding):
        size += 1
    return size


def valid_input_size_at_most(at_most: int, depth: int, padding: str = "valid") -> int:
    """The largest valid input side length that is at most ``at_most``.

    Raises
    ------
    ValueError
        If no valid size is that small.
    """
    smallest = valid_input_size(1, depth, padding)
    if at_most < smallest:
        raise ValueError(f"no valid input size is at most {at_most} (the smallest is {smallest})")
    size = int(at_most)
    while not is_valid_input(size, depth, padding):
        size -= 1
    return size


def halo(depth: int, padding: str = "valid") -> int:
    """Context lost on each side: ``(input - output) / 2`` (92 pixels at depth 4, 0 for "same")."""
    if padding == "same":
        return 0
    size = valid_input_size(1, depth)
    return (size - output_size(size, depth)) // 2


def alignment(depth: int) -> int:
    """Offsets between tiles must be multiples of this (``2**depth``) for a tiled pass to equal a whole pass.

    Max pooling is only equivariant to shifts by whole pooling windows; at depth 4 that is 16 pixels.
    """
    return 2**depth


def smallest_tile(depth: int, padding: str = "valid") -> int:
    """The smallest valid input size whose output spans at least one alignment step."""
    size = valid_input_size(1, depth, padding)
    while output_size(size, depth, padding) < alignment(depth):
        size = valid_input_size(size + 1, depth, padding)
    return size


def activation_elements(input_size: int, depth: int, base_filters: int, training: bool) -> float:
    """Rough count of activation elements alive at the peak, per image in the batch.

    Inference keeps every skip connection plus the input and output of the widest layer; training keeps
    every intermediate tensor for the backward pass. The estimate errs on the large side.
    """
    pixels = float(input_size) ** 2
    if training:
        # about six tensors of each level's width (convs, norms, activations) on the way down and up
        per_level = [12 * base_filters * 2**d / 4**d for d in range(depth + 1)]
        return pixels * sum(per_level)
    skips = sum(base_filters * 2**d / 4**d for d in range(depth))
    return pixels * (skips + 5 * base_filters)


def tile_for_memory(
    budget_bytes: float,
    depth: int,
    base_filters: int,
    *,
    batch_size: int = 1,
    bytes_per_element: int = 4,
    training: bool = False,
    padding: str = "valid",
    largest: int = 4188,
) -> int:
    """The largest valid input tile whose activations fit in ``budget_bytes``.

    Parameters
    ----------
    budget_bytes : float
        Memory the forward (and, for training, backward) pass may use.
    depth, base_filters : int
        Architecture of the network.
    batch_size : int
        Tiles processed together.
    bytes_per_element : int
        4 for float32, 2 for bfloat16/float16.
    training : bool
        Whether activations are kept for a backward pass.
    padding : {"valid", "same"}
        Convolution padding of the network.
    largest : int
        Upper bound on the returned size (beyond about 4000 pixels the border overhead is under 10%).

    Returns
    -------
    int
        A valid input side length, never smaller than :func:`smallest_tile`.
    """
    per_pixel = activation_elements(1, depth, base_filters, training) * bytes_per_element * batch_size
    side = int(math.sqrt(max(budget_bytes, 0.0) / per_pixel)) if per_pixel > 0 else largest
    side = min(side, largest)
    floor = smallest_tile(depth, padding)
    if side <= floor:
        return floor
    return max(valid_input_size_at_most(side, depth, padding), floor)


@dataclass(frozen=True)
class TileGeometry:
    """Sizes that govern tiling for a network of a given depth and padding.

    For "same" padding (an ablation of the paper's design) tiles are cut like for a valid network and
    the network's output is centre-cropped by ``halo``; the result then only approximates a whole pass.
    """

    depth: int
    padding: str = "valid"

    @property
    def halo(self) -> int:
        """Context added on each side of an output tile."""
        return halo(self.depth, "valid")

    @property
    def alignment(self) -> int:
        """Tile offsets are multiples of this."""
        return alignment(self.depth)

    def output_size(self, tile: int) -> int:
        """Output side length of an input tile."""
        return tile - 2 * self.halo

    def valid_tile(self, at_least: int) -> int:
        """Smallest valid input tile of at least ``at_least`` pixels whose output spans an alignment step."""
        if self.padding == "same":
            size = max(at_least, 2 * self.halo + self.alignment)
            return math.ceil(size / self.alignment) * self.alignment
        size = max(at_least, smallest_tile(self.depth, "valid"))
        return valid_input_size(size, self.depth, "valid")
