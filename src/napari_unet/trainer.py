"""The training loop behind ``fit``: sampling, augmentation, optimisation steps, validation, recovery."""

from __future__ import annotations

import copy
import datetime
import math
import time
from collections.abc import Generator
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from . import __version__
from . import device as devices
from .augment import augment_batch
from .bundle import Model
from .data import TrainingData
from .losses import weighted_cross_entropy
from .model import UNetConfig
from .train_config import TrainConfig, TrainProgress, learning_rate_at, with_learning_rate
from .validation import Validation, validate


def _optimizer(net: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, or the paper's SGD with momentum."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            net.parameters(),
            lr=config.learning_rate,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
    return torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)


#: Output side of a training patch when ``TrainConfig.patch_size`` is 0, by device type: on a GPU
#: compute is cheap and larger outputs give more context per step (the standard preset's CLI scribble run
#: on DSB2018 went from F1 0.71 with 20-pixel outputs to 0.83 with 100); on the CPU 44-pixel outputs of the
#: light preset scored the same as 100-pixel ones (mean F1 0.832 vs 0.838 over 3 seeds) in half the time.
DEFAULT_PATCH_OUTPUT = {"cpu": 40, "gpu": 96}


def default_patch_size(cfg: UNetConfig, device_type: str = "cpu") -> int:
    """The training input side used when none is given (see DEFAULT_PATCH_OUTPUT)."""
    if cfg.padding == "same":
        return 128
    output = DEFAULT_PATCH_OUTPUT["cpu" if device_type == "cpu" else "gpu"]
    return cfg.valid_input_size(2 * cfg.halo + output)


def patch_geometry(model: Model, config: TrainConfig, device_type: str = "cpu") -> tuple[int, int, int]:
    """Network input size, output size and the larger window cut for augmentation."""
    cfg = model.config
    size = config.patch_size or default_patch_size(cfg, device_type)
    if cfg.padding == "same":
        size = math.ceil(size / 2**cfg.depth) * 2**cfg.depth
    else:
        size = cfg.valid_input_size(max(size, 2 * cfg.halo + 2**cfg.depth))
    out = cfg.output_size(size)
    aug = config.augment
    margin = int(0.21 * size + 3 * aug.elastic_sigma * aug.strength + aug.shift * aug.strength) + 2
    return size, out, size + 2 * margin


class TrainingRun:
    """One training run: the optimisation loop, validation, and leaving the model usable at the end."""

    def __init__(self, model: Model, data: TrainingData, config: TrainConfig, device: torch.device) -> None:
        config = with_learning_rate(config, trained_before=bool(model.history))
        self.model, self.data, self.config, self.device = model, data, config, device
        self.net = model.net
        self.size, self.out, self.window = patch_geometry(model, config, device.type)
        self.rng = np.random.default_rng(config.seed)
        self.gen = torch.Generator().manual_seed(config.seed)
        self.noise_gen = None
        if device.type != "cpu":
            self.noise_gen = torch.Generator(device=device).manual_seed(config.seed)
        self.step = 0
        self.loss = float("nan")
        self.last_validation: Validation | None = None
        self.reason = "stopped"
        self.start = time.perf_counter()
        self.amp = config.amp and devices.autocast_dtype(device) is not None
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=self.amp and devices.autocast_dtype(device) == torch.float16
        )
        self.good_state: dict[str, torch.Tensor] | None = None
        self.batch_size = config.batch_size

    def fraction(self) -> float:
        """Share of the budget used."""
        parts = []
        if self.config.steps:
            parts.append(self.step / self.config.steps)
        if self.config.minutes:
            parts.append((time.perf_counter() - self.start) / (60.0 * self.config.minutes))
        return min(max(parts), 1.0)

    def record(
        self, lr: float, validation: Validation | None = None, done: bool = False, message: str = ""
    ) -> TrainProgress:
        """The progress record of the current state."""
        return TrainProgress(
            step=self.step,
            total_steps=self.config.steps,
            fraction=self.fraction(),
            loss=self.loss,
            learning_rate=lr,
            elapsed=time.perf_counter() - self.start,
            device=devices.describe(self.device),
            validation=validation,
            done=done,
            message=self.reason if done else message,
        )

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch of augmented patches on the device: images, labels and weights (cropped to the output)."""
        images, labels, weights = self.data.sample_batch(
            self.batch_size, self.window, self.out, self.rng, self.config.painted_fraction
        )
        to = {"device": self.device, "non_blocking": True}
        x, y, w = (torch.from_numpy(a).to(**to) for a in (images, labels, weights))
        x, y, w = augment_batch(x, y, w, self.config.augment, self.gen, (self.size, self.size), self.noise_gen)
        crop = (self.size - self.out) // 2
        y, w = (t[:, crop : crop + self.out, crop : crop + self.out] for t in (y, w))
        if self.config.channels_last and self.device.type in ("cuda", "cpu"):
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y, w

    def one_step(self, optimizer: torch.optim.Optimizer) -> float | None:
        """One optimisation step; returns its loss, or None (and changes nothing) if the loss is not finite."""
        self.net.train()
        x, y, w = self.batch()
        with devices.autocast(self.device, self.amp):
            logits = self.net(x)
        loss = weighted_cross_entropy(logits, y, w)
        optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())
        if not math.isfinite(value):
            return None
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
        return value

    def shrink_batch(self, optimizer: torch.optim.Optimizer) -> bool:
        """After running out of device memory: halve the batch; False if it was 1 already."""
        optimizer.zero_grad(set_to_none=True)
        devices.release(self.device)
        if self.batch_size == 1:
            self.reason = "stopped: out of GPU memory even with batch size 1; use a smaller patch size or the CPU"
            return False
        self.batch_size //= 2
        return True

    def steps(self) -> Generator[TrainProgress, None, None]:
        """The optimisation loop: a record after every step, and a final one with ``done=True``."""
        self.net.to(self.device)
        if self.config.channels_last and self.device.type in ("cuda", "cpu"):
            self.net.to(memory_format=torch.channels_last)
        optimizer = _optimizer(self.net, self.config)
        self.good_state = copy.deepcopy(self.net.state_dict())
        bad_steps = 0
        validation: Validation | None = None
        while self.fraction() < 1.0:
            lr = learning_rate_at(self.fraction(), self.config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            try:
                value = self.one_step(optimizer)
            except torch.OutOfMemoryError:
                if not self.shrink_batch(optimizer):
                    break
                yield self.record(lr, message=f"GPU memory full: batch size lowered to {self.batch_size}")
                continue
            if value is None:
                bad_steps += 1
                if bad_steps >= 3:
                    self.net.load_state_dict(self.good_state)
                    self.reason = (
                        "stopped: the loss became infinite or NaN; kept the last good model (lower the learning rate)"
                    )
                    break
                continue
            bad_steps = 0
            self.step += 1
            self.loss = value
            validation = None
            if self.step % self.config.validate_every == 0:
                validation = self.validate()
                self.good_state = copy.deepcopy(self.net.state_dict())
            yield self.record(lr, validation)
        else:
            self.reason = "finished"
        if validation is None:
            validation = self.validate()
        yield self.record(learning_rate_at(self.fraction(), self.config), validation, done=True)

    def validate(self) -> Validation | None:
        """Score the held-out painted pixels (None if there are none, or no memory is left for it)."""
        self.net.eval()
        try:
            self.last_validation = validate(self.net, self.data, self.device, self.amp)
        except torch.OutOfMemoryError:
            devices.release(self.device)
            return None
        return self.last_validation

    def finish(self) -> None:
        """Leave the model usable whatever happened: eval mode, on the CPU, run recorded, GPU memory freed."""
        self.net.eval()
        self.net.to("cpu", memory_format=torch.contiguous_format)
        devices.release(self.device)
        entry: dict[str, Any] = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "steps": self.step,
            "seconds": round(time.perf_counter() - self.start, 1),
            "final_loss": round(self.loss, 5) if math.isfinite(self.loss) else None,
            "device": devices.describe(self.device),
            "ended": self.reason,
            "labelled_pixels": self.data.labelled_pixels,
            "outlined_fraction": round(self.data.outlined_fraction, 4),
            "version": __version__,
        }
        if self.last_validation is not None:
            entry.update(val_loss=round(self.last_validation.loss, 5), val_iou=round(self.last_validation.iou, 4))
        entry["config"] = {k: v for k, v in asdict(self.config).items() if k != "augment"}
        self.model.history.append(entry)
