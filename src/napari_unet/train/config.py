"""Settings and progress records of training runs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from napari_unet.errors import InputError
from napari_unet.train.augment import AugmentConfig

#: Values of ``TrainConfig.compile``: no compilation, or a ``torch.compile`` mode.
COMPILE_MODES = ("off", "default", "reduce-overhead")


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
        Side of the network input during training; 0 picks the smallest valid input whose output is at
        least 40 pixels on the CPU (132 for the light preset) and 96 on a GPU (284 for the standard
        and paper presets); 128 with same padding.
    learning_rate : float or None
        Peak learning rate (after a short warm-up, it decays on a cosine to 1% of this); None picks
        LEARNING_RATE_NEW (3e-3) for a new model; for one trained already (the starting model, a retrain
        after corrections) LEARNING_RATE_FINE_TUNE (1e-4) when it gets the paint right, and
        LEARNING_RATE_RETRAIN (1e-3) when it gets 5% of the painted pixels or more wrong.
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
        Steps between validations (there is always one at the end), or more where validating would take
        over a tenth of the time (see :meth:`napari_unet.train.loop.TrainingRun.validate`).
    painted_fraction : float
        Share of patches centred near a painted pixel.
    focus_fraction : float
        Share of patches centred near a painted pixel that the network gets wrong when the run starts
        (corrections, new paint): they are learned first. The share halves after the first half of the
        run. Only for a model trained before (a new one gets everything wrong).
    seed : int
        Seed for sampling, augmentation and the validation split; with it, CPU training is
        deterministic.
    device : str
        "auto", "cpu", "cuda" or "mps".
    amp : bool
        Mixed precision (bfloat16 or float16) on GPUs.
    channels_last : bool
        Channels-last memory layout (CUDA tensor cores; oneDNN on CPUs, about 1.2x faster training steps).
    compile : {"off", "default", "reduce-overhead"}
        ``torch.compile`` the network's training forward pass (and so its backward pass): "default" fuses
        the element-wise and batch-norm kernels; "reduce-overhead" also replays the steps as CUDA graphs,
        so the host no longer launches each kernel. Compiling takes about 35 s at the start (again after
        the batch shrinks for lack of GPU memory), which counts against ``minutes``: worth it for runs of
        several minutes on a GPU. ``fit`` of the paper U-Net with batch norm (batch 4, 572 patches, H100):
        41 steps/s eager, 34 "default", 64-67 "reduce-overhead". On the CPU it compiles too but rarely
        pays. Validation, previews and the saved model use the network uncompiled.
    """

    steps: int | None = 500
    minutes: float | None = None
    batch_size: int = 8
    patch_size: int = 0
    learning_rate: float | None = None
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
    focus_fraction: float = 0.5
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    compile: str = "off"

    def __post_init__(self) -> None:
        if self.steps is None and self.minutes is None:
            raise InputError("give steps, minutes or both")
        if self.optimizer not in ("adamw", "sgd"):
            raise InputError(f"optimizer must be 'adamw' or 'sgd', not {self.optimizer!r}")
        if self.batch_size < 1:
            raise InputError("batch_size must be at least 1")
        if self.compile not in COMPILE_MODES:
            allowed = ", ".join(repr(m) for m in COMPILE_MODES)
            raise InputError(f"compile must be one of {allowed}, not {self.compile!r}")


@dataclass(frozen=True)
class Validation:
    """Scores on the held-out painted pixels.

    Attributes
    ----------
    loss : float
        Mean cross-entropy (unweighted).
    iou : float
        Mean over object classes of the intersection over union of predicted and painted pixels.
    pixels : int
        Number of held-out pixels.
    """

    loss: float
    iou: float
    pixels: int


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


#: Peak learning rates when none is given. Fine-tuning gently keeps what a trained model knows: from the
#: starting model on DSB2018 scribbles (CPU, 3 seeds) 1e-4 reached a mean F1 of 0.89 after 200 steps,
#: 3e-4 0.87 and 3e-3 fell to 0.80, below the starting model's own 0.84.
LEARNING_RATE_NEW = 3e-3
LEARNING_RATE_FINE_TUNE = 1e-4

#: Peak learning rate for a trained model that gets :data:`MISTAKES_TO_LEARN` of the painted pixels or
#: more wrong when the run starts (corrections, or images unlike those it knows): refining gently did not
#: fit them. On synthetic rod-shaped bacteria (benchmarks/correction_loop.py, 3 rounds of 8 objects, 3
#: seeds) F1 on unpainted images rose to 0.63 after three rounds at 1e-4 and to 0.77 at 1e-3.
LEARNING_RATE_RETRAIN = 1e-3
MISTAKES_TO_LEARN = 0.05

#: Training steps of a retrain after corrections ("Add corrections and retrain"): the longest retrain that
#: keeps a round (retrain + segment a 512x512 image) within a minute on a 2-core CPU (about 45 s). Chosen
#: on synthetic rod-shaped bacteria (benchmarks/correction_loop.py --cases rods, 3 rounds of 8 objects):
#: F1 on frames never painted after round 3 was 0.80 / 0.69 / 0.82 with 150 steps a round and
#: 0.83 / 0.84 / 0.77 with 300 (means 0.77 and 0.81), for seeds 0 / 1 / 2.
RETRAIN_STEPS = 300


def for_retrain(config: TrainConfig, steps: int = RETRAIN_STEPS) -> TrainConfig:
    """``config`` as a retrain after corrections runs it: ``steps`` steps, whatever time budget it had."""
    return replace(config, steps=steps, minutes=None)


def with_learning_rate(config: TrainConfig, trained_before: bool, mistakes: float = 0.0) -> TrainConfig:
    """``config`` with its learning rate chosen if it has none.

    A new model learns at :data:`LEARNING_RATE_NEW`; one trained before is refined gently
    (:data:`LEARNING_RATE_FINE_TUNE`) unless it gets ``mistakes`` (a share) of the painted pixels wrong, at
    least :data:`MISTAKES_TO_LEARN`: then it has something new to learn (:data:`LEARNING_RATE_RETRAIN`).
    """
    if config.learning_rate is not None:
        return config
    if not trained_before:
        return replace(config, learning_rate=LEARNING_RATE_NEW)
    rate = LEARNING_RATE_RETRAIN if mistakes >= MISTAKES_TO_LEARN else LEARNING_RATE_FINE_TUNE
    return replace(config, learning_rate=rate)


def learning_rate_at(fraction: float, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak learning rate (which must be set)."""
    peak = config.learning_rate
    if peak is None:
        raise ValueError("the learning rate must be chosen first (with_learning_rate)")
    if fraction < config.warmup:
        return peak * max(fraction / config.warmup, 0.01)
    t = (fraction - config.warmup) / max(1.0 - config.warmup, 1e-9)
    return peak * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0))))
