"""An inference copy of a U-Net that runs each convolution with its bias or batch norm and its ReLU as one.

Eager PyTorch runs a convolution block as a convolution, a bias (or batch norm) pass and a ReLU pass
over the whole activation; at the first level of the paper's network each pass moves as many bytes as
the convolution needs time. On CUDA, cuDNN's fused convolution + bias + ReLU
(``torch.cudnn_convolution_relu``) does the three in one kernel; batch norm in eval mode is folded into
the convolution's weights and bias first. The copy holds its weights in the compute precision (bf16 on
recent GPUs), so no cast runs per call. Elsewhere the same folded arithmetic runs unfused, which lets it
be checked on any machine.

Three more things on CUDA, each measured on an H100 (paper network, 1836 tiles, batch 4): the
one-channel first convolution runs as one matrix product (im2col, then cuBLAS with bias and ReLU in its
epilogue), 384 -> 423 TFLOP/s; 2 x 2 max pooling runs as a reduction over a reshaped channels-last view,
414 -> 423; and the folded bf16 weights of a network kept on the host are cached in page-locked memory,
so segmenting again copies them over instead of moving and folding the float32 network (about 35 ms
before the first tile of an 8192 x 8192 image, with the random initialisation the copy no longer does).

Group norm takes its statistics from each tile, so it cannot be folded: such networks are not fused.
Where cuDNN has no fused kernel for the GPU or precision at hand, the first failure is reported once as
a warning and the folded arithmetic runs as separate kernels from then on.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from napari_unet.models.unet import ConvBlock, UNet, center_crop


def can_fuse(net: nn.Module) -> bool:
    """Whether ``net`` is a U-Net whose blocks fold into fused convolutions (no group norm)."""
    return isinstance(net, UNet) and net.config.norm in ("none", "batch")


def _get(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A float64 copy of a parameter or buffer on ``device`` (a copy even when nothing needs converting)."""
    return tensor.detach().to(device).double().clone()


def _folded(
    conv: nn.Conv2d, norm: nn.Module, device: torch.device, input_bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias of ``conv`` followed by ``norm`` (batch norm in eval mode, or nothing), in float64.

    ``input_bias`` (float64, one value per input channel, on ``device``) is a constant the input carries:
    with a valid convolution every output sees it under all of its kernel, so it moves into the bias.
    The parameters go to ``device`` first (one float32 copy) and are folded there.
    """
    weight = _get(conv.weight, device)
    bias = _get(conv.bias, device) if conv.bias is not None else torch.zeros(weight.shape[0], device=device).double()
    if input_bias is not None:
        bias = bias + weight.sum(dim=(2, 3)) @ input_bias
    if isinstance(norm, nn.BatchNorm2d):
        scale = _get(norm.weight, device) / torch.sqrt(_get(norm.running_var, device) + norm.eps)
        weight = weight * scale[:, None, None, None]
        bias = (bias - _get(norm.running_mean, device)) * scale + _get(norm.bias, device)
    return weight, bias


#: Whether cuDNN's fused convolution + bias + ReLU may be tried; False after it failed once in this process
#: (a GPU or cuDNN build without those kernels), when the same arithmetic runs as separate kernels.
cudnn_fusion = {"available": True}


def _tries_cudnn(x: torch.Tensor) -> bool:
    """Whether to run ``x`` through cuDNN's fused kernel."""
    return x.is_cuda and cudnn_fusion["available"]


def conv_bias_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: int) -> torch.Tensor:
    """``relu(conv2d(x, weight, bias))`` with a 3x3 kernel: one cuDNN kernel on CUDA where it exists."""
    pad = (padding, padding)
    if _tries_cudnn(x):
        try:
            return torch.cudnn_convolution_relu(x, weight, bias, (1, 1), pad, (1, 1), 1)
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as error:
            cudnn_fusion["available"] = False
            message = f"cuDNN's fused convolution is not available here, using separate kernels: {error}"
            warnings.warn(message, stacklevel=2)
    return F.relu(F.conv2d(x, weight, bias, padding=pad))


def _folded_weights(net: UNet, device: torch.device) -> dict[str, torch.Tensor]:
    """Every weight and bias of the fused copy of ``net``, folded in float64 on ``device``.

    Names: ``down{i}_weight1`` ... for the blocks (``bottom``, ``up_block{i}``), ``up{i}_weight`` (and
    ``up{i}_bias`` where it cannot be folded) for the up-convolutions, ``head_weight`` and ``head_bias``.
    """
    weights: dict[str, torch.Tensor] = {}

    def block(name: str, convs: ConvBlock, input_bias: torch.Tensor | None = None) -> None:
        conv1, norm1, _, conv2, norm2, _ = convs
        for index, (conv, norm) in enumerate(((conv1, norm1), (conv2, norm2)), start=1):
            weight, bias = _folded(conv, norm, device, input_bias if index == 1 else None)
            weights[f"{name}_weight{index}"], weights[f"{name}_bias{index}"] = weight, bias

    for i, convs in enumerate(net.down):
        block(f"down{i}", convs)
    block("bottom", net.bottom)
    # with valid convolutions an up-convolution's bias is a constant the next convolution sees under its
    # whole kernel: it moves into that convolution's bias, which saves a pass over the activation
    fold_up_bias = net.config.padding == "valid"
    for i, (up, convs) in enumerate(zip(net.up, net.up_blocks, strict=True)):
        weights[f"up{i}_weight"] = _get(up.weight, device)
        input_bias = None
        if fold_up_bias:
            skip = torch.zeros(convs[0].in_channels - up.out_channels, dtype=torch.float64, device=device)
            input_bias = torch.cat([skip, _get(up.bias, device)])
        else:
            weights[f"up{i}_bias"] = _get(up.bias, device)
        block(f"up_block{i}", convs, input_bias)
    weights["head_weight"], weights["head_bias"] = _get(net.head.weight, device), _get(net.head.bias, device)
    return weights


@dataclass
class _HostCopy:
    """A fused copy's weights kept in page-locked host memory, and what they were made from."""

    key: tuple
    sources: list[torch.Tensor]  # the network's tensors then: held, so no new tensor takes their address
    weights: dict[str, torch.Tensor]


#: The last fused copy of each network made for a CUDA device, in page-locked host memory (about half the
#: network's size in bf16). Segmenting again with unchanged weights copies it over (a few milliseconds,
#: not waited for) instead of moving and folding the float32 network (tens of milliseconds).
_host_copies: weakref.WeakKeyDictionary[UNet, _HostCopy] = weakref.WeakKeyDictionary()


def _sources(net: UNet) -> list[torch.Tensor]:
    return [t.detach() for t in [*net.parameters(), *net.buffers()]]


def _key(sources: list[torch.Tensor], dtype: torch.dtype) -> tuple:
    """What a fused copy depends on: every tensor's storage and version (bumped by each in-place change)."""
    return (dtype, *((t.data_ptr(), t._version, t.device, t.dtype) for t in sources))


def fused_weights(net: UNet, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
    """The fused copy's weights in ``dtype`` on ``device`` (channels-last there on CUDA).

    For a network on the host, on CUDA they come from the host copy of the last call when the network
    has not changed since: its tensors are the same ones (same storage, held by the cache so that none
    can be reused) at the same version (which every in-place change, an optimiser step or
    ``load_state_dict``, increases).
    """
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    sources = _sources(net)
    # only for a network kept on the host between jobs (refs to a training network's GPU tensors would hold
    # their memory after training), and not for inference tensors, which have no version
    cacheable = device.type == "cuda" and all(t.device.type == "cpu" and not t.is_inference() for t in sources)
    key = _key(sources, dtype) if cacheable else None
    cached = _host_copies.get(net) if cacheable else None
    if cached is not None and cached.key == key:
        return {name: w.to(device, non_blocking=True) for name, w in cached.weights.items()}
    weights = {
        name: w.to(dtype).contiguous(memory_format=memory_format if w.dim() == 4 else torch.contiguous_format)
        for name, w in _folded_weights(net, device).items()
    }
    if not cacheable:
        _host_copies.pop(net, None)
    else:
        host = {}
        for name, w in weights.items():
            host[name] = torch.empty_like(w, device="cpu", pin_memory=True)
            host[name].copy_(w, non_blocking=True)
        torch.cuda.current_stream(device).synchronize()  # the host copy is complete before any reuse
        _host_copies[net] = _HostCopy(key, sources, host)
    return weights


def _conv_block(
    x: torch.Tensor, weights: dict[str, torch.Tensor], name: str, padding: int, first=conv_bias_relu
) -> torch.Tensor:
    """Both fused convolution + bias + ReLU steps of block ``name`` (the first one by ``first``)."""
    x = first(x, weights[f"{name}_weight1"], weights[f"{name}_bias1"], padding)
    return conv_bias_relu(x, weights[f"{name}_weight2"], weights[f"{name}_bias2"], padding)


#: How the copy max-pools on CUDA: "reshape" takes the maximum over a (H/2, 2, W/2, 2, C) view of the
#: channels-last activation (a plain reduction, read once); "max_pool2d" is torch's pooling kernel.
CUDA_POOLING = {"mode": "reshape"}


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2)``; on CUDA for a channels-last ``x`` as a reduction over a reshaped view.

    Odd rows or columns at the end are dropped, as ``max_pool2d`` drops them.
    """
    if not (x.is_cuda and CUDA_POOLING["mode"] == "reshape" and x.is_contiguous(memory_format=torch.channels_last)):
        return F.max_pool2d(x, 2)
    return pool_by_reshape(x)


def pool_by_reshape(x: torch.Tensor) -> torch.Tensor:
    """2 x 2 max pooling of a channels-last ``x`` as a maximum over a reshaped (N, H/2, 2, W/2, 2, C) view."""
    batch, channels, height, width = x.shape
    nhwc = x.permute(0, 2, 3, 1)[:, : height - height % 2, : width - width % 2]
    pooled = nhwc.reshape(batch, height // 2, 2, width // 2, 2, channels).amax(dim=(2, 4))
    return pooled.permute(0, 3, 1, 2)


#: Whether the copy runs its first convolution as a matrix product on CUDA in 16-bit precision when the
#: input has few channels ("gemm"), or as a convolution ("conv"). With one input channel cuDNN has no
#: tensor-core kernel: a generic one plus a layout copy took 13% of the paper network's GPU time (H100,
#: 1836 tiles); padded to 8 channels it picked a slower one still.
CUDA_FIRST_LAYER = {"mode": "gemm"}

#: The first convolution runs as a matrix product when its input has at most this many channels.
GEMM_MAX_CHANNELS = 3


def first_conv_as_gemm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: int) -> torch.Tensor:
    """``relu(conv2d(x, weight, bias, padding))`` as one matrix product, returned channels-last.

    The 9 C shifted copies of the input (im2col, each written in one contiguous pass) make a (K, M)
    matrix, K padded with zero rows to a multiple of 8 and M = B h w; its transpose times the (K, O)
    weights, with the bias and ReLU in cuBLAS's epilogue, is the (M, O) output: the channels-last
    activation itself.
    """
    if padding:
        x = F.pad(x, (padding,) * 4)
    batch, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    h, w = height - kh + 1, width - kw + 1
    taps, m = channels * kh * kw, batch * h * w
    k_rows, m_padded = -(-taps // 8) * 8, -(-m // 8) * 8  # aligned rows for the matrix units
    columns = torch.zeros((k_rows, m_padded), dtype=weight.dtype, device=x.device)
    shifted = columns[:taps, :m].view(channels, kh, kw, batch, h, w)
    for c in range(channels):
        for dy in range(kh):
            for dx in range(kw):
                shifted[c, dy, dx].copy_(x[:, c, dy : dy + h, dx : dx + w])
    matrix = F.pad(weight.reshape(out_channels, taps), (0, k_rows - taps))  # (O, K)
    out = torch._addmm_activation(bias, columns.t(), matrix.t())  # (M, O), bias and ReLU fused
    return out[:m].view(batch, h, w, out_channels).permute(0, 3, 1, 2)


class FusedUNet(nn.Module):
    """A frozen inference copy of a :class:`napari_unet.models.unet.UNet` in ``dtype`` on ``device``.

    The network itself may stay where it is (on the CPU between jobs): only the copy goes to ``device``.
    Takes a float batch of any precision, returns logits in ``dtype``; the original is not changed and
    later changes to it are not seen (make a new copy after training).

    Parameters
    ----------
    net : UNet
        The network (batch norm or none).
    dtype : torch.dtype
        Precision of the weights and the computation.
    device : torch.device, optional
        Where the copy computes; the network's device if None.
    first_as_gemm : bool, optional
        Run the first convolution as a matrix product (:func:`first_conv_as_gemm`); None: on CUDA in
        16-bit precision with at most GEMM_MAX_CHANNELS input channels (see CUDA_FIRST_LAYER).
    """

    def __init__(
        self,
        net: UNet,
        dtype: torch.dtype = torch.float32,
        device: torch.device | None = None,
        first_as_gemm: bool | None = None,
    ) -> None:
        super().__init__()
        if not can_fuse(net):
            raise ValueError("only U-Nets without group norm can be fused")
        device = torch.device(device) if device is not None else next(net.parameters()).device
        if first_as_gemm is None:
            sixteen_bit = dtype in (torch.bfloat16, torch.float16)
            few_channels = net.config.in_channels <= GEMM_MAX_CHANNELS
            first_as_gemm = device.type == "cuda" and sixteen_bit and few_channels
        self.first_as_gemm = first_as_gemm
        self.dtype = dtype
        self.depth = net.config.depth
        self.padding = net.down[0][0].padding[0]
        weights = fused_weights(net, dtype, device)
        for name, weight in weights.items():
            self.register_buffer(name, weight)
        self.names = list(weights)
        self.eval()

    def weights(self) -> dict[str, torch.Tensor]:
        """The copy's weights by name (see :func:`fused_weights`)."""
        return {name: getattr(self, name) for name in self.names}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (in ``dtype``) for a batch of images."""
        weights = self.weights()
        x = x.to(self.dtype)
        skips = []
        as_gemm = self.first_as_gemm and CUDA_FIRST_LAYER["mode"] == "gemm"
        for i in range(self.depth):
            first = first_conv_as_gemm if i == 0 and as_gemm else conv_bias_relu
            x = _conv_block(x, weights, f"down{i}", self.padding, first)
            skips.append(x)
            x = max_pool_2x2(x)
        x = _conv_block(x, weights, "bottom", self.padding)
        for i in range(self.depth):
            x = F.conv_transpose2d(x, weights[f"up{i}_weight"], weights.get(f"up{i}_bias"), stride=2)
            skip = center_crop(skips.pop(), x.shape[-2], x.shape[-1])
            x = _conv_block(torch.cat([skip, x], dim=1), weights, f"up_block{i}", self.padding)
        return F.conv2d(x, weights["head_weight"], weights["head_bias"])
