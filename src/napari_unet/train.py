"""Training from sparse annotations: ``fit`` is a generator of progress records that can stop at any step."""

from __future__ import annotations

import copy
import datetime
import math
import time
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from . import __version__
from . import device as devices
from .augment import AugmentConfig, augment_batch
from .bundle import Model
from .data import TrainingData, prepare_training_data
from .errors import TrainingError
from .losses import weighted_cross_entropy
from .validation import Validation, validate


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a training run (defaults suit fine-tuning from sparse scribbles).

    Parameters
    ----------
    steps : int or None
        Optimisation steps; None to train until ``minutes`` run out.
    minutes : float or None
        Wall-clock budget; training stops at whichever of ``steps`` and ``minutes`` comes first.
    batch_size : int
        Patches per step.
    patch_size : int
        Side of the network input during training; 0 picks the smallest valid size of at least 128.
    learning_rate : float
        Peak learning rate (after a short warm-up, it decays on a cosine to 1% of this).
    optimizer : {"adamw", "sgd"}
        AdamW (default) or the paper's SGD with high momentum.
    momentum : float
        Momentum of SGD (0.99 in the paper).
    weight_decay : float
        Decoupled weight decay.
    warmup : float
        Fraction of the run spent warming up the learning rate.
    augment : AugmentConfig
        Elastic deformation and the other augmentations.
    border_w0, border_sigma : float
        The paper's border weight (10, 5 px); ``border_w0 = 0`` switches it off.
    class_balance : bool
        Weigh classes by inverse frequency of their painted pixels.
    val_fraction : float
        Share of the painted pixels held out for validation.
    validate_every : int
        Steps between validations (there is always one at the end).
    painted_fraction : float
        Share of patches centred near a painted pixel.
    seed : int
        Seed for sampling, augmentation and the validation split; with it, CPU training is
        deterministic.
    device : str
        "auto", "cpu", "cuda" or "mps".
    amp : bool
        Mixed precision (bfloat16 or float16) on GPUs.
    channels_last : bool
        Channels-last memory layout on CUDA.

    """

    steps: int | None = 1000
    minutes: float | None = None
    batch_size: int = 8
    patch_size: int = 0
    learning_rate: float = 3e-3
    optimizer: str = "adamw"
    momentum: float = 0.99
    weight_decay: float = 1e-4
    warmup: float = 0.05
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    border_w0: float = 10.0
    border_sigma: float = 5.0
    class_balance: bool = True
    val_fraction: float = 0.1
    validate_every: int = 100
    painted_fraction: float = 0.9
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True

    def __post_init__(self) -> None:
        if self.steps is None and self.minutes is None:
            raise ValueError("give steps, minutes or both")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', not {self.optimizer!r}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")


@dataclass(frozen=True)
class TrainProgress:
    """One training step's report.

    Attributes
    ----------
    step : int
        Steps done so far in this run.
    total_steps : int or None
        Steps planned, if a step budget was given.
    fraction : float
        Share of the budget (steps or time, whichever is closer) used.
    loss : float
        Training loss of this step.
    learning_rate : float
        Learning rate of this step.
    elapsed : float
        Seconds since the run started.
    device : str
        Where training runs.
    validation : Validation or None
        Validation loss and IoU, on the steps where it was computed.
    done : bool
        Whether this is the last record; ``message`` then says why training ended.
    message : str
        Reason the run ended, or what it is doing.

    """

    step: int
    total_steps: int | None
    fraction: float
    loss: float
    learning_rate: float
    elapsed: float
    device: str
    validation: Validation | None = None
    done: bool = False
    message: str = ""


def learning_rate_at(fraction: float, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak learning rate."""
    peak = config.learning_rate
    if fraction < config.warmup:
        return peak * max(fraction / config.warmup, 0.01)
    t = (fraction - config.warmup) / max(1.0 - config.warmup, 1e-9)
    return peak * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0))))


def _optimizer(net: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            net.parameters(),
            lr=config.learning_rate,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
    return torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)


def patch_geometry(model: Model, config: TrainConfig) -> tuple[int, int, int]:
    """Network input size, output size and the larger window cut for augmentation."""
    cfg = model.config
    size = config.patch_size or 128
    if cfg.padding == "same":
        size = math.ceil(size / 2**cfg.depth) * 2**cfg.depth
    else:
        size = cfg.valid_input_size(max(size, 2 * cfg.halo + 2**cfg.depth))
    out = cfg.output_size(size)
    aug = config.augment
    margin = int(0.21 * size + 3 * aug.elastic_sigma * aug.strength + aug.shift * aug.strength) + 2
    return size, out, size + 2 * margin


def prepare(
    model: Model,
    images: Sequence[np.ndarray],
    annotations: Sequence[np.ndarray] | None,
    config: TrainConfig = TrainConfig(),
    channel_axis: int | None = None,
) -> TrainingData:
    """Check and prepare images and annotations for :func:`fit` with the settings of ``config``.

    Raises
    ------
    InputError, TrainingError
        If the data cannot be used (nothing painted, one class only, shapes differ ...).

    """
    if annotations is None:
        raise TrainingError("annotations are missing: give one label image per image")
    return prepare_training_data(
        images,
        annotations,
        model.in_channels,
        model.n_classes,
        model.normalization,
        val_fraction=config.val_fraction,
        class_balance=config.class_balance,
        border_w0=config.border_w0,
        border_sigma=config.border_sigma,
        channel_axis=channel_axis,
        seed=config.seed,
    )


def fit(
    model: Model,
    images: Sequence[np.ndarray] | TrainingData,
    annotations: Sequence[np.ndarray] | None = None,
    config: TrainConfig = TrainConfig(),
    channel_axis: int | None = None,
) -> Generator[TrainProgress, None, Model]:
    """Train ``model`` in place on images with sparse annotations, yielding a record after every step.

    Stop at any time by leaving the loop (or ``close()``-ing the generator): the model keeps what it
    has learned, is back on the CPU in eval mode, and the run is recorded in ``model.history``.

    Parameters
    ----------
    model : Model
        The model to train (new, or loaded for fine-tuning).
    images : sequence of numpy.ndarray or TrainingData
        Images (any layout the model accepts), or data already made by :func:`prepare`.
    annotations : sequence of numpy.ndarray
        One label image per image: 0 unlabelled, 1 background, 2.. object classes.
    config : TrainConfig
        Settings of the run.
    channel_axis : int, optional
        Channel axis of multichannel images.

    Yields
    ------
    TrainProgress
        After every step; the last one has ``done=True``.

    Returns
    -------
    Model
        The same model, trained.

    Raises
    ------
    InputError, TrainingError
        If the data cannot be used (nothing painted, one class only, shapes differ ...).

    """
    data = images if isinstance(images, TrainingData) else prepare(model, images, annotations, config, channel_axis)
    device = devices.select_device(config.device)
    run = _Run(model, data, config, device)
    try:
        yield from run.steps()
    finally:
        run.finish()
    return model


class _Run:
    """State of one training run; ``fit`` drives it."""

    def __init__(self, model: Model, data: TrainingData, config: TrainConfig, device: torch.device) -> None:
        self.model, self.data, self.config, self.device = model, data, config, device
        self.net = model.net
        self.size, self.out, self.window = patch_geometry(model, config)
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

    def fraction(self) -> float:
        """Share of the budget used."""
        parts = []
        if self.config.steps:
            parts.append(self.step / self.config.steps)
        if self.config.minutes:
            parts.append((time.perf_counter() - self.start) / (60.0 * self.config.minutes))
        return min(max(parts), 1.0)

    def record(self, lr: float, validation: Validation | None = None, done: bool = False) -> TrainProgress:
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
            message=self.reason if done else "",
        )

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, labels, weights = self.data.sample_batch(
            self.config.batch_size, self.window, self.out, self.rng, self.config.painted_fraction
        )
        to = {"device": self.device, "non_blocking": True}
        x, y, w = (torch.from_numpy(a).to(**to) for a in (images, labels, weights))
        x, y, w = augment_batch(x, y, w, self.config.augment, self.gen, (self.size, self.size), self.noise_gen)
        crop = (self.size - self.out) // 2
        y, w = (t[:, crop : crop + self.out, crop : crop + self.out] for t in (y, w))
        if self.config.channels_last and self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y, w

    def steps(self) -> Generator[TrainProgress, None, None]:
        self.net.to(self.device)
        if self.config.channels_last and self.device.type == "cuda":
            self.net.to(memory_format=torch.channels_last)
        optimizer = _optimizer(self.net, self.config)
        self.good_state = copy.deepcopy(self.net.state_dict())
        bad_steps = 0
        while self.fraction() < 1.0:
            lr = learning_rate_at(self.fraction(), self.config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            self.net.train()
            x, y, w = self.batch()
            with devices.autocast(self.device, self.amp):
                logits = self.net(x)
            loss = weighted_cross_entropy(logits, y, w)
            optimizer.zero_grad(set_to_none=True)
            value = float(loss.detach())
            if not math.isfinite(value):
                bad_steps += 1
                if bad_steps >= 3:
                    self.net.load_state_dict(self.good_state)
                    self.reason = (
                        "stopped: the loss became infinite or NaN; kept the last good model (lower the learning rate)"
                    )
                    break
                continue
            bad_steps = 0
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
            self.step += 1
            self.loss = value
            validation = None
            if self.step % self.config.validate_every == 0:
                validation = self.validate()
                self.good_state = copy.deepcopy(self.net.state_dict())
            yield self.record(lr, validation)
        else:
            self.reason = "finished"
        validation = self.validate()
        yield self.record(learning_rate_at(self.fraction(), self.config), validation, done=True)

    def validate(self) -> Validation | None:
        self.net.eval()
        self.last_validation = validate(self.net, self.data, self.device, self.amp)
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
            "version": __version__,
        }
        if self.last_validation is not None:
            entry.update(val_loss=round(self.last_validation.loss, 5), val_iou=round(self.last_validation.iou, 4))
        entry["config"] = {k: v for k, v in asdict(self.config).items() if k != "augment"}
        self.model.history.append(entry)
