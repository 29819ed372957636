"""The training loop behind ``fit``: sampling, augmentation, optimisation steps, validation, recovery."""

from __future__ import annotations

import copy
import datetime
import math
import time
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from napari_unet import devices
from napari_unet._version import __version__
from napari_unet.models.model import Model
from napari_unet.objects.classes import channel_argmax
from napari_unet.train.augment import augment_batch
from napari_unet.train.compiled_steps import compiled_forward
from napari_unet.train.config import TrainConfig, TrainProgress, Validation, learning_rate_at, with_learning_rate
from napari_unet.train.data import TrainingData
from napari_unet.train.losses import weighted_cross_entropy
from napari_unet.train.object_rules import choose_object_rules
from napari_unet.train.optimizers import make_optimizer
from napari_unet.train.painted_prediction import PaintedPredictor
from napari_unet.train.patches import patch_geometry
from napari_unet.train.validation import next_validation_step, validate


@dataclass
class LaunchedStep:
    """An optimisation step whose work is queued on the device and whose loss has not been read yet.

    Attributes
    ----------
    loss : torch.Tensor
        The step's loss on the host (on CUDA a pinned tensor that an asynchronous copy fills).
    ready : torch.cuda.Event or None
        On CUDA, passed when the copy is done (right after the step's forward pass); None elsewhere.
    lr : float
        The learning rate of the step.
    """

    loss: torch.Tensor
    ready: torch.cuda.Event | None
    lr: float

    def value(self) -> float:
        """The loss (NaN or infinite for a step that changed nothing), waiting for the forward pass only."""
        if self.ready is not None:
            self.ready.synchronize()
        return float(self.loss)


#: Device types on which a helper thread cuts the next batch while the current one trains (on a CPU the
#: thread would take cores from the network).
PREFETCH_ON = ("cuda",)

#: How a run ends after 3 steps in a row with an infinite or NaN loss.
DIVERGED = "stopped: the loss became infinite or NaN; kept the last good model (lower the learning rate)"


class TrainingRun:
    """One training run: the optimisation loop, validation, and leaving the model usable at the end."""

    def __init__(self, model: Model, data: TrainingData, config: TrainConfig, device: torch.device) -> None:
        if not model.history:  # a trained model's rate is chosen when the run starts, from its mistakes
            config = with_learning_rate(config, trained_before=False)
        self.model, self.data, self.config, self.device = model, data, config, device
        self.net = model.net
        #: what runs the training forward pass: the network, or its compiled wrapper (``compiled_forward``)
        self.forward: Callable[[torch.Tensor], torch.Tensor] = self.net
        self.size, self.out, self.window = patch_geometry(model, config, device.type)
        self.rng = np.random.default_rng(config.seed)
        self.gen = torch.Generator().manual_seed(config.seed)
        self.noise_gen = None
        if device.type != "cpu":
            self.noise_gen = torch.Generator(device=device).manual_seed(config.seed)
        self.step = 0
        self.loss = float("nan")
        self.last_validation: Validation | None = None
        #: the step of the next validation during the run (:meth:`validate` spaces them)
        self.next_validation = config.validate_every
        #: object rules chosen from the objects painted whole at the end of the run (None: none chosen)
        self.object_rules: dict | None = None
        #: share of the painted pixels a trained model got wrong when the run started (None: not measured)
        self.mistakes: float | None = None
        self.reason = "stopped"
        self.start = time.perf_counter()
        self.amp = config.amp and devices.autocast_dtype(device) is not None
        self.dynamic_scale = self.amp and devices.autocast_dtype(device) == torch.float16
        #: CUDA checks the gradients on the device (see one_step); elsewhere the host checks the loss
        self.device_checks = device.type == "cuda"
        self.scaler = self.grad_scaler()
        self.good_state: dict[str, torch.Tensor] | None = None
        self.batch_size = config.batch_size
        self.prefetcher: ThreadPoolExecutor | None = None
        self.ahead: Future | None = None

    def grad_scaler(self) -> torch.amp.GradScaler:
        """The gradient scaler: dynamic for float16 autocast; on CUDA always on (at scale 1 without float16).

        On CUDA it finds inf/NaN gradients on the device and the fused optimizer skips the update there.
        """
        return torch.amp.GradScaler(
            self.device.type,
            init_scale=2.0**16 if self.dynamic_scale else 1.0,
            enabled=self.dynamic_scale or self.device_checks,
        )

    def fraction(self, ahead: int = 0) -> float:
        """Share of the budget used (with ``ahead`` more steps for a step budget)."""
        parts = []
        if self.config.steps:
            parts.append((self.step + ahead) / self.config.steps)
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
        x, y, w = (devices.to_device(t, self.device) for t in self.sampled_batch())
        x, y, w = augment_batch(x, y, w, self.config.augment, self.gen, (self.size, self.size), self.noise_gen)
        crop = (self.size - self.out) // 2
        y, w = (t[:, crop : crop + self.out, crop : crop + self.out] for t in (y, w))
        if self.config.channels_last and self.device.type in ("cuda", "cpu"):
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y, w

    def sampled_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The next batch of windows on the host; on CUDA cut by a helper thread while the GPU computes.

        The thread cuts one batch ahead (numpy's copies let go of the interpreter), so making a batch
        overlaps the queuing of the step before; it alone draws from ``self.rng``, in order.
        """
        if self.device.type not in PREFETCH_ON:
            return self.cut_batch(self.batch_size)
        if self.prefetcher is None:
            self.prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-unet-batches")
        ahead, self.ahead = self.ahead, None
        host = ahead.result() if ahead is not None else None
        if host is None or host[0].shape[0] != self.batch_size:  # none yet, or cut before the batch shrank
            host = self.cut_batch(self.batch_size)
        self.ahead = self.prefetcher.submit(self.cut_batch, self.batch_size)
        return host

    def cut_batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cut ``batch_size`` windows into new host tensors (:meth:`host_batch`)."""
        host = self.host_batch(batch_size)
        views = tuple(t.numpy() for t in host)
        focus = self.config.focus_fraction * (1.0 if self.fraction() < 0.5 else 0.5)
        self.data.sample_batch(batch_size, self.window, self.out, self.rng, self.config.painted_fraction, views, focus)
        return host

    def host_batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Empty host tensors for a batch (images, labels, weights); page-locked for a CUDA device.

        Windows are cut straight into page-locked memory, from which the copy to the GPU runs without
        the host waiting; torch's pinned-memory cache hands a buffer out again only once its copy is done.
        """
        pinned = self.device_checks  # on CUDA
        square = (batch_size, self.window, self.window)
        label_dtype = torch.uint8 if self.data.label_dtype == np.uint8 else torch.int32
        return (
            torch.empty((batch_size, self.data.in_channels, self.window, self.window), pin_memory=pinned),
            torch.empty(square, dtype=label_dtype, pin_memory=pinned),
            torch.empty(square, pin_memory=pinned),
        )

    def one_step(
        self,
        optimizer: torch.optim.Optimizer,
        batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        lr: float,
    ) -> LaunchedStep:
        """Queue one optimisation step on ``batch``; the weights stay as they are if the loss is not finite.

        On CUDA nothing here waits for the GPU: the loss goes to the host by an asynchronous copy, and a
        non-finite loss makes every gradient NaN, so the scaler's on-device check has the fused optimizer
        skip the update (as it does for inf/NaN gradients). Elsewhere the host reads the loss and skips
        the backward pass and the update itself.
        """
        for group in optimizer.param_groups:
            group["lr"] = lr
        self.net.train()
        x, y, w = batch
        optimizer.zero_grad(set_to_none=True)
        if self.config.compile == "reduce-overhead":
            # CUDA graphs reuse their outputs' memory from one step to the next: say where a step begins
            # rather than rely on torch's guess (wrong after a step cut short before its backward pass)
            torch.compiler.cudagraph_mark_step_begin()
        with devices.autocast(self.device, self.amp):
            logits = self.forward(x)
        loss = weighted_cross_entropy(logits, y, w)
        launched = LaunchedStep(loss.detach().to("cpu", non_blocking=self.device_checks), None, lr)
        if self.device_checks:
            launched.ready = torch.cuda.Event()
            launched.ready.record()
            loss = loss * torch.where(torch.isfinite(loss.detach()), 1.0, math.nan)
        elif not math.isfinite(launched.value()):
            return launched
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update(None if self.dynamic_scale else 1.0)
        return launched

    def shrink_batch(self, optimizer: torch.optim.Optimizer) -> bool:
        """After running out of device memory: halve the batch; False if it was 1 already."""
        optimizer.zero_grad(set_to_none=True)
        # a step cut short can leave the scaler (and a fused optimizer) half-way through: start afresh
        vars(optimizer).pop("grad_scale", None)
        vars(optimizer).pop("found_inf", None)
        self.scaler = self.grad_scaler()
        devices.release(self.device)
        if self.batch_size == 1:
            self.reason = "stopped: out of GPU memory even with batch size 1; use a smaller patch size or the CPU"
            return False
        self.batch_size //= 2
        return True

    def steps(self) -> Generator[TrainProgress, None, None]:
        """The optimisation loop: a record after every step, and a final one with ``done=True``.

        Each step's loss is read one step late, so that the host does not wait for the device: the next
        batch is made while the GPU computes the step, and only then is the step's loss read (it is ready
        as soon as the step's forward pass is), its record yielded and the next step queued. When a record
        is yielded the weights are those after its step, and no later step has started: leaving the loop
        there leaves the model exactly as the record says.
        """
        self.net.to(self.device)
        if self.config.channels_last and self.device.type in ("cuda", "cpu"):
            self.net.to(memory_format=torch.channels_last)
        self.forward = compiled_forward(self.net, self.config.compile)
        if self.model.history:  # what it gets wrong now draws the first windows and sets the rate
            wanted = self.config.focus_fraction > 0 or self.config.learning_rate is None
            self.mistakes = self.focus_on_mistakes() if wanted else None
            self.config = with_learning_rate(self.config, trained_before=True, mistakes=self.mistakes or 0.0)
        optimizer = make_optimizer(self.net, self.config, fused=self.device_checks)
        self.good_state = copy.deepcopy(self.net.state_dict())
        bad_steps = 0
        validation: Validation | None = None
        launched: LaunchedStep | None = None
        while True:
            batch, out_of_memory = None, False
            if self.fraction(ahead=launched is not None) < 1.0:
                try:
                    batch = self.batch()
                except torch.OutOfMemoryError:
                    out_of_memory = True
            if launched is not None:
                value, lr = launched.value(), launched.lr
                launched = None
                if not math.isfinite(value):  # the weights did not change: the step does not count
                    bad_steps += 1
                    if bad_steps >= 3:
                        self.net.load_state_dict(self.good_state)
                        self.reason = DIVERGED
                        break
                else:
                    bad_steps = 0
                    self.step += 1
                    self.loss = value
                    validation = None
                    if self.step >= self.next_validation:
                        validation = self.validate()
                        self.good_state = copy.deepcopy(self.net.state_dict())
                    yield self.record(lr, validation)
            if batch is not None:
                try:
                    launched = self.one_step(optimizer, batch, learning_rate_at(self.fraction(), self.config))
                except torch.OutOfMemoryError:
                    out_of_memory = True
            if out_of_memory:
                if not self.shrink_batch(optimizer):
                    break
                lr = learning_rate_at(self.fraction(), self.config)
                yield self.record(lr, message=f"GPU memory full: batch size lowered to {self.batch_size}")
            elif launched is None and self.fraction() >= 1.0:
                self.reason = "finished"
                break
        if validation is None:
            validation = self.validate()
        self.object_rules = self.choose_object_rules()
        yield self.record(learning_rate_at(self.fraction(), self.config), validation, done=True)

    def validate(self) -> Validation | None:
        """Score the held-out painted pixels (None if there are none, or no memory is left for it).

        The next validation comes ``validate_every`` steps later, or later (:func:`next_validation_step`).
        """
        self.net.eval()
        start = time.perf_counter()
        try:
            self.last_validation = validate(self.net, self.data, self.device, self.amp)
        except torch.OutOfMemoryError:
            devices.release(self.device)
            return None
        step_seconds = (start - self.start) / max(self.step, 1)
        seconds = time.perf_counter() - start
        self.next_validation = next_validation_step(self.step, self.config.validate_every, seconds, step_seconds)
        return self.last_validation

    def focus_on_mistakes(self) -> float:
        """Centre the first windows on the painted pixels the network gets wrong now (corrections, say).

        Returns the share of the painted pixels it gets wrong (0 if it could not be told).
        """
        self.net.eval()
        painted = PaintedPredictor(self.net, self.device, self.amp, self.data.n_classes)
        masks = []
        try:
            for plane in self.data.planes:
                wrong = np.zeros(plane.labels.shape, dtype=bool)
                for box, probabilities, part in painted.around_groups(plane.image, plane.labels > 0):
                    wrong[box] |= part & (channel_argmax(probabilities) + 1 != plane.labels[box])
                masks.append(wrong)
        except torch.OutOfMemoryError:
            devices.release(self.device)
            return 0.0
        self.data.focus_on(masks)
        return self.data.focus_pixels / max(self.data.labelled_pixels, 1)

    def choose_object_rules(self) -> dict | None:
        """The object rules the objects painted whole ask for (:mod:`napari_unet.train.object_rules`), if any."""
        self.net.eval()
        try:
            # for the shape the model is used with: trying every rule of every shape took 10 s of a 60 s round
            return choose_object_rules(self.net, self.data, self.device, self.amp, (self.model.object_shape,))
        except torch.OutOfMemoryError:
            devices.release(self.device)
            return None

    def finish(self) -> None:
        """Leave the model usable whatever happened: eval mode, on the CPU, run recorded, GPU memory freed."""
        self.config = with_learning_rate(self.config, trained_before=True)  # if stopped before it was chosen
        if self.prefetcher is not None:
            self.prefetcher.shutdown(wait=True, cancel_futures=True)
            self.prefetcher, self.ahead = None, None
        self.forward = self.net
        if self.config.compile == "reduce-overhead" and self.device.type == "cuda":
            # torch keeps the compiled code for as long as the network lives, and with it the private memory
            # pool of its CUDA graphs: drop it (and torch's other compiled code) to hand the memory back
            torch.compiler.reset()
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
        if self.mistakes is not None:
            entry["painted_wrong_at_start"] = round(self.mistakes, 4)
        if self.object_rules is not None:
            entry["object_rules"] = self.object_rules
        entry["config"] = {k: v for k, v in asdict(self.config).items() if k != "augment"}
        self.model.history.append(entry)
