"""Choice of compute device (CUDA, then Apple MPS, then CPU), its precision, and releasing its memory."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from napari_unet.errors import InputError

#: Names a device can be chosen by ("cuda:1" also works for a second GPU).
DEVICES = ("auto", "cpu", "cuda", "mps")


def cpu_cores() -> int:
    """CPU cores this process may use (its affinity mask where the system has one, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def select_device(name: str = "auto") -> torch.device:
    """The torch device for ``name``: "auto" picks CUDA, then MPS, then the CPU.

    Raises
    ------
    InputError
        If the device is unknown or not available on this machine.
    """
    base = name.split(":")[0]
    if base not in DEVICES:
        raise InputError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' asked for but no CUDA GPU is available; use --device cpu")
    if base == "mps" and not torch.backends.mps.is_available():
        raise InputError("device 'mps' asked for but Apple MPS is not available; use --device cpu")
    return torch.device(name)


def describe(device: torch.device) -> str:
    """A short human-readable name: the GPU model, or the CPU with its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed-precision dtype for ``device``: bfloat16 where supported, float16 otherwise, None on the CPU."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return None


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """Autocast context for mixed precision on GPUs; a no-op on the CPU or when disabled."""
    dtype = autocast_dtype(device)
    if not enabled or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on ``device``; to CUDA through a page-locked copy, so that the host does not wait.

    ``pin_memory`` makes a new buffer, so the asynchronous copy cannot see later changes to ``tensor``.
    """
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def release(device: torch.device) -> None:
    """Return cached GPU memory to the driver so other programs (and napari) can use it."""
    if device.type == "cuda":
        # cuBLAS keeps a workspace (32 MiB) per stream in torch's allocator once it has run a product
        clear_workspaces = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
        if clear_workspaces is not None:
            clear_workspaces()
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def free_memory(device: torch.device) -> int:
    """Bytes of memory free for a job on ``device`` (for the CPU, a fixed 2 GiB budget).

    On CUDA: what the driver has free plus what torch holds cached but unused (a previous job's memory
    kept with ``release_memory=False``), so that the next job is sized as if it had been given back.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached)
    return 2 << 30


def _is_channels_last(module: torch.nn.Module) -> bool:
    """Whether the module's convolution weights are in channels-last layout (judged on one with C > 1)."""
    for weight in module.parameters():
        if weight.dim() == 4 and weight.shape[1] > 1 and weight.shape[2] * weight.shape[3] > 1:
            return weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    return False


#: After a job, torch's cache on a CUDA GPU is given back when its unused part is more than this share of
#: the card's memory, or when less than this share of the card is free (``release_memory=None``).
RELEASE_SHARE = 0.25


def worth_releasing(device: torch.device) -> bool:
    """Whether to give torch's cached memory on ``device`` back after a job (``release_memory=None``).

    On a CUDA GPU: when the memory cached but unused is more than :data:`RELEASE_SHARE` of the card, or
    the card has less than that share free, so that napari's canvas and other programs get it. A job
    that takes a small share of a large card keeps its cache for the next one: giving it back and taking
    it again cost 20-50 ms an image on an H100 (0.289 s against 0.268 s for an 8192 x 8192 image,
    ``benchmarks/results/speed_gpu.md``). Apple GPUs share the computer's memory: always. CPUs: never
    (there is nothing to give back).
    """
    if device.type == "mps":
        return True
    if device.type != "cuda":
        return False
    free, total = torch.cuda.mem_get_info(device)
    unused = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return unused > RELEASE_SHARE * total or free < RELEASE_SHARE * total


def gives_back(device: torch.device, release_memory: bool | None) -> bool:
    """``release_memory`` if given, else :func:`worth_releasing` (asked when the job ends)."""
    return worth_releasing(device) if release_memory is None else release_memory


@contextlib.contextmanager
def released(device: torch.device, release_memory: bool | None = None) -> Iterator[None]:
    """Run a job, then give the device's cached memory back (to napari and other programs).

    ``release_memory``: True always, False never, None when :func:`worth_releasing`.
    """
    try:
        yield
    finally:
        if gives_back(device, release_memory):
            release(device)


@contextlib.contextmanager
def on_device(
    module: torch.nn.Module, device: torch.device, channels_last: bool = False, release_memory: bool | None = None
) -> Iterator[None]:
    """Run a job with ``module`` on ``device``, then put it back where it was.

    A module that is already there (a network in the middle of training, asked for a preview) stays
    there (on a CPU it is switched to channels-last for the job and back); one brought over is moved back
    afterwards and the device's cached memory released as :func:`released` says.
    """
    home = next(module.parameters()).device
    if home == device or (home.type == device.type and device.index is None):
        if channels_last and device.type == "cpu" and not _is_channels_last(module):
            module.to(memory_format=torch.channels_last)  # oneDNN: 1.5-1.8x faster with channels-last weights
            try:
                yield
            finally:
                module.to(memory_format=torch.contiguous_format)
        else:  # already channels-last (a network training on the CPU) or nothing to do: leave it as it is
            yield
        return
    module.to(device)
    if channels_last and device.type in ("cuda", "cpu"):
        module.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        module.to(home, memory_format=torch.contiguous_format)
        if gives_back(device, release_memory):
            release(device)
