"""Optimisers of a training run: AdamW, or the paper's SGD with high momentum."""

from __future__ import annotations

import torch

from napari_unet.train.config import TrainConfig


def make_optimizer(net: torch.nn.Module, config: TrainConfig, fused: bool = False) -> torch.optim.Optimizer:
    """AdamW, or the paper's SGD with momentum.

    ``fused`` (for CUDA) gives the fused implementations, which take the gradient scaler's inf/NaN flag
    on the device and skip the update there, so that the host never waits to learn whether to step.
    """
    if config.optimizer == "sgd":
        sgd = torch.optim.SGD(
            net.parameters(),
            lr=config.learning_rate,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            fused=fused or None,
        )
        if fused and config.momentum:
            # fused SGD's first step fills momentum buffers made by empty_like, so a first step skipped for
            # inf/NaN gradients would leave garbage in them; zero buffers give the first step the same update
            for p in net.parameters():
                sgd.state[p]["momentum_buffer"] = torch.zeros_like(p)
        return sgd
    return torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=fused or None
    )
