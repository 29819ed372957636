"""The training forward pass through ``torch.compile`` (``TrainConfig.compile``)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from napari_unet.errors import TrainingError


def compiled_forward(net: torch.nn.Module, mode: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """``net`` itself for ``mode`` "off", else its ``torch.compile`` wrapper in that mode.

    The wrapper shares the network's parameters and buffers, so the optimizer and everything that uses
    the network (validation, previews, saving) see the same weights. It compiles on its first call, and
    again for a new batch shape (``dynamic=False``: a batch shrunk after running out of memory). A
    compilation that fails raises TrainingError, or the OutOfMemoryError behind it (a smaller batch may fit).
    """
    if mode == "off":
        return net
    from torch._dynamo.exc import BackendCompilerFailed

    compiled = torch.compile(net, mode=mode, dynamic=False)

    def forward(x: torch.Tensor) -> torch.Tensor:
        try:
            return compiled(x)
        except BackendCompilerFailed as error:
            cause = error.inner_exception
            if isinstance(cause, torch.OutOfMemoryError):
                raise cause from error
            first_line = next(iter(str(cause).splitlines()), "")
            raise TrainingError(
                f"torch.compile failed ({type(cause).__name__}: {first_line}); train with compile 'off'"
            ) from error

    return forward
