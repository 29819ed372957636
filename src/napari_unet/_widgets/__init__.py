"""The napari layer of napari-unet: thin dock widgets over the core."""

from .annotate import AnnotateWidget
from .correct import CorrectWidget
from .export import ExportWidget
from .segment import SegmentWidget
from .train import TrainWidget

__all__ = ["AnnotateWidget", "CorrectWidget", "ExportWidget", "SegmentWidget", "TrainWidget"]
