"""An inference copy of a U-Net that runs each convolution with its bias or batch norm and its ReLU as one.

Eager PyTorch runs a convolution block as a convolution, a bias (or batch norm) pass and a ReLU pass
over the whole activation; at the first level of the paper's network each pass moves as many bytes as
the convolution needs time. On CUDA, cuDNN's fused convolution + bias + ReLU
(``torch.cudnn_convolution_relu``) does the three in one kernel; batch norm in eval mode is folded into
the convolution's weights and bias first. The copy holds its weights in the compute precision (bf16 on
recent GPUs), so no cast runs per call. Elsewhere the same folded arithmetic runs unfused, which lets it
be checked on any machine.

Group norm takes its statistics from each tile, so it cannot be folded: such networks are not fused.
Where cuDNN has no fused kernel for the GPU or precision at hand, the first failure is reported once as
a warning and the folded arithmetic runs as separate kernels from then on.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .model import ConvBlock, UNet, center_crop


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


class FusedConvBlock(nn.Module):
    """Two fused 3x3 convolution + bias + ReLU steps, from a :class:`napari_unet.model.ConvBlock`."""

    def __init__(
        self, block: ConvBlock, dtype: torch.dtype, device: torch.device, input_bias: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        conv1, norm1, _, conv2, norm2, _ = block
        self.padding = conv1.padding[0]
        for index, (conv, norm) in enumerate(((conv1, norm1), (conv2, norm2)), start=1):
            weight, bias = _folded(conv, norm, device, input_bias if index == 1 else None)
            memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
            weight = weight.to(device=device, dtype=dtype).contiguous(memory_format=memory_format)
            self.register_buffer(f"weight{index}", weight)
            self.register_buffer(f"bias{index}", bias.to(device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Both steps."""
        x = conv_bias_relu(x, self.weight1, self.bias1, self.padding)
        return conv_bias_relu(x, self.weight2, self.bias2, self.padding)


class FusedUNet(nn.Module):
    """A frozen inference copy of a :class:`napari_unet.model.UNet` in ``dtype`` on ``device``.

    The network itself may stay where it is (on the CPU between jobs): only the copy goes to ``device``.
    Takes a float batch of any precision, returns logits in ``dtype``; the original is not changed and
    later changes to it are not seen (make a new copy after training).
    """

    def __init__(self, net: UNet, dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> None:
        super().__init__()
        if not can_fuse(net):
            raise ValueError("only U-Nets without group norm can be fused")
        device = device or next(net.parameters()).device
        self.dtype = dtype
        self.down = nn.ModuleList(FusedConvBlock(block, dtype, device) for block in net.down)
        self.bottom = FusedConvBlock(net.bottom, dtype, device)
        # with valid convolutions an up-convolution's bias is a constant the next convolution sees under its
        # whole kernel: it moves into that convolution's bias, which saves a pass over the activation
        fold_up_bias = net.config.padding == "valid"
        self.up_blocks = nn.ModuleList()
        copies = []
        for up, block in zip(net.up, net.up_blocks, strict=True):
            copy = nn.ConvTranspose2d(
                up.in_channels, up.out_channels, 2, stride=2, bias=not fold_up_bias, dtype=up.weight.dtype
            )
            copy.weight.data.copy_(up.weight.detach())
            input_bias = None
            if fold_up_bias:
                skip = torch.zeros(block[0].in_channels - up.out_channels, dtype=torch.float64, device=device)
                input_bias = torch.cat([skip, _get(up.bias, device)])
            else:
                copy.bias.data.copy_(up.bias.detach())
            copies.append(copy)
            self.up_blocks.append(FusedConvBlock(block, dtype, device, input_bias))
        memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        self.up = nn.ModuleList(copies).to(device=device, dtype=dtype, memory_format=memory_format)
        self.head = nn.Conv2d(net.head.in_channels, net.head.out_channels, 1, dtype=net.head.weight.dtype)
        self.head.load_state_dict(net.head.state_dict())
        self.head.to(device=device, dtype=dtype, memory_format=memory_format)
        self.eval()
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (in ``dtype``) for a batch of images."""
        x = x.to(self.dtype)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, block in zip(self.up, self.up_blocks, strict=True):
            x = up(x)
            skip = center_crop(skips.pop(), x.shape[-2], x.shape[-1])
            x = block(torch.cat([skip, x], dim=1))
        return self.head(x)
