"""How classes become objects: confidence thresholds, splitting, filling and the named object shapes."""

from __future__ import annotations

from dataclasses import dataclass

from napari_unet.errors import InputError

#: Confidence thresholds, chosen on synthetic data only (benchmarks/object_defaults.py, 3 seeds): after
#: scribbles 0.95 scored mean F1 0.866 (0.7: 0.79); after whole objects 0.7 scored 0.982 (0.95: 0.78).
THRESHOLD_SCRIBBLED = 0.95
THRESHOLD_OUTLINED = 0.7


@dataclass(frozen=True)
class ObjectConfig:
    """How object masks become individual objects.

    Objects are made of the pixels whose class is the most probable *and* at least ``threshold``
    probable. A network trained on sparse scribbles never saw the boundaries painted and is unsure near
    them; its confident pixels give better boundaries and leave the narrow, dimmer gaps between touching
    objects out. The defaults were chosen on synthetic touching nuclei (benchmarks/README.md), not on the
    real evaluation images.

    Parameters
    ----------
    threshold : float or None
        Smallest probability of its class for a pixel to belong to an object (0.5 or less: the argmax).
        None (the default) chooses for the model (:func:`napari_unet.predict.object_thresholds.object_config_for`):
        the threshold that best reproduced the objects painted whole, when some were
        (:mod:`napari_unet.train.object_rules`); else THRESHOLD_SCRIBBLED (0.95) after scribbles,
        THRESHOLD_OUTLINED (0.7) when its last training outlined whole objects.
    split : bool or None
        Split touching objects of one class with a watershed of the distance to the background, on top
        of the background gaps the network predicts between them. None (the default, the "round" shape)
        chooses for the model as ``threshold`` does: only if splitting reproduced the objects painted
        whole better than the network's own separations; without objects painted whole, split.
    split_depth : float
        How much deeper (in pixels of distance) a centre must be than the neck joining it to its
        neighbour for the two to be split; larger values split less.
    smoothing : float
        Gaussian smoothing (pixels) of the distance map before looking for centres.
    min_size : int
        Objects smaller than this many pixels are dropped.
    fill : bool
        Grow the objects over the whole plane up to the boundaries the network predicts: a watershed of
        the background probability seeded by the confident objects. For cells packed in a tissue
        (electron microscopy, membrane stains), where every pixel belongs to a cell and the background
        class is the membranes between them: a gap in a predicted membrane no longer merges two cells,
        because each keeps its own confident core. Usually without ``split`` (cells in a tissue are not
        round); see :data:`OBJECT_SHAPES`.
    grow : bool or None
        Grow the confident objects back over the pixels of their class that the network finds most
        probable (the argmax), along the valleys of the background probability: the threshold then
        decides where touching objects separate, no longer how large they are. Only with a threshold
        above 0.5. None (the default) grows unless a threshold is set by hand (an object is then what
        the model is that sure of); chosen for the model with ``threshold``: as the objects painted whole
        showed best, else grow. On synthetic images (benchmarks/object_defaults.py, 3 seeds, scored on the painted
        image), at the default thresholds: nuclei after scribbles F1 0.881 (without: 0.875), rods after
        scribbles 0.368 (0.283), nuclei painted whole 0.975 (0.964).
    grow_to : float
        Smallest probability of their class for pixels that objects grow over, where the background is
        the most probable class (0.5: the argmax only). Training weighs painted background more than
        objects (class balance, border weights), which moves the argmax inside the painted outlines: a
        quarter of a rod's width after a few rods painted whole. Chosen with ``threshold`` from the
        objects painted whole (:mod:`napari_unet.train.object_rules`).
    """

    threshold: float | None = None
    split: bool | None = None
    split_depth: float = 0.5
    smoothing: float = 1.0
    min_size: int = 16
    fill: bool = False
    grow: bool | None = None
    grow_to: float = 0.5

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise InputError(f"the object threshold is a probability between 0 and 1, not {self.threshold:g}")
        if not 0.0 < self.grow_to <= 0.5:
            raise InputError(f"objects grow to pixels at least 0 to 0.5 probable, not {self.grow_to:g}")

    @classmethod
    def for_shape(cls, shape: str, **settings) -> ObjectConfig:
        """The settings for one of :data:`OBJECT_SHAPES` ("round", "packed" or "connected"), plus ``settings``."""
        if shape not in OBJECT_SHAPES:
            raise InputError(f"unknown object shape {shape!r}: choose one of {', '.join(OBJECT_SHAPES)}")
        return cls(**{**OBJECT_SHAPES[shape][1], **settings})

    @property
    def shape(self) -> str:
        """The :data:`OBJECT_SHAPES` entry these settings follow: packed if filled, connected if never split."""
        if self.fill:
            return "packed"
        return "connected" if self.split is False else "round"

    @property
    def grows(self) -> bool:
        """Whether confident objects are grown back over the foreground (``grow`` None: unless a threshold is set)."""
        return self.grow if self.grow is not None else self.threshold is None

    @property
    def splits(self) -> bool:
        """Whether touching objects are split (``split`` None, still to be chosen, splits)."""
        return self.split is not False


#: Kinds of objects, each with a description and its splitting and filling settings. "round": nuclei or
#: cells in culture, touching ones split at the necks between them; "packed": cells that fill a tissue,
#: separated by the predicted boundaries (ISBI 2012: adapted Rand error 0.045 vs 0.27 for the connected
#: pixels, benchmarks/results/quality.md); "connected": every connected group of confident pixels.
OBJECT_SHAPES: dict[str, tuple[str, dict[str, bool | None]]] = {
    "round": ("round, touching ones split (nuclei, cells in culture)", {"split": None, "fill": False}),
    "packed": ("packed cells filling the image (tissue, EM)", {"split": False, "fill": True, "grow": False}),
    "connected": ("connected pixels, nothing split or grown", {"split": False, "fill": False}),
}
