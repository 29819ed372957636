"""Which model a job uses: a model file, the shipped starting model, the current one, or a new one.

The command line, the Python API and the napari widgets all ask here, so that a job gets the same model
whichever front end starts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from napari_unet.errors import InputError
from napari_unet.models.files import load_model
from napari_unet.models.model import Model, new_model
from napari_unet.models.starting import STARTING, load_starting_model, starting_model_path
from napari_unet.models.unet import PRESETS, preset_for_device

#: Sources of a model to train besides a model file: the model trained so far, or a new one.
CURRENT, NEW = "current", "new"


@dataclass
class ModelChoice:
    """The model a job uses, with a name for it and what its user should know about the choice.

    Attributes
    ----------
    model : Model
        The model (a fresh copy when it was loaded or made new).
    label : str
        What it is, for status lines ("starting model", "new light model", "nuclei.pt" ...).
    note : str
        Something to tell the user, or "": why a new model is trained instead of the starting model,
        or that the starting model segments since none was trained.
    """

    model: Model
    label: str
    note: str = ""


def resolve_model(name: str | Path) -> Model:
    """Load a model file, or the starting model for the name "starting" (unless such a file exists)."""
    if str(name) == STARTING and not Path(name).exists():
        return load_starting_model()
    return load_model(name)


def model_label(name: str | Path) -> str:
    """What :func:`resolve_model` of ``name`` is called in status lines."""
    return "starting model" if str(name) == STARTING and not Path(name).exists() else Path(name).name


def default_training_source(device_type: str) -> str:
    """What training starts from unless told otherwise: the starting model if shipped, else a new preset."""
    return STARTING if starting_model_path() is not None else f"{NEW}: {preset_for_device(device_type)}"


def model_for_segmenting(current: Model | None, source: str | Path | None = None) -> ModelChoice:
    """The model to segment with: ``source`` (a model file or "starting") if given, else the current model.

    Without either, the starting model, with a note saying so.

    Raises
    ------
    InputError
        If there is no model to segment with.
    ModelFileError
        If ``source`` cannot be loaded.
    """
    if source is not None:
        return ModelChoice(resolve_model(source), model_label(source))
    if current is not None:
        return ModelChoice(current, "current model")
    if starting_model_path() is None:
        raise InputError("there is no model yet: train one (Train widget) or load a model file")
    note = (
        "no model trained yet: segmenting with the starting model (synthetic nuclei); "
        "paint corrections and retrain to adapt it"
    )
    return ModelChoice(load_starting_model(), "starting model", note)


def model_for_training(
    source: str | Path,
    current: Model | None,
    class_names: list[str],
    in_channels: int,
    top_class: int,
    device_type: str,
    seed: int | None = None,
) -> ModelChoice:
    """The model a training run starts from.

    Parameters
    ----------
    source : str or path
        "current" (the model trained so far), "starting" (the shipped model), "new" or "new: PRESET" (a
        new model; "new" alone takes the preset for ``device_type``), or a model file.
    current : Model or None
        The model trained so far, if any. A new or starting model takes its object shape (the kind of
        objects chosen for this work).
    class_names : list of str
        Object class names of a new model.
    in_channels : int
        Channels of the images to train on.
    top_class : int
        The largest annotation value painted.
    device_type : str
        Where training runs ("cpu", "cuda" ...): picks the preset of a new model.
    seed : int, optional
        Seed of a new model's weights.

    Returns
    -------
    ModelChoice
        When the starting model cannot read the images or knows fewer classes than painted, a new model
        with a note that says why.

    Raises
    ------
    InputError
        If there is no current model, the preset is unknown, or the model knows fewer classes than painted.
    ModelFileError
        If a model file cannot be loaded.
    """
    source = str(source)
    if source == CURRENT:
        if current is None:
            raise InputError("there is no current model yet: start training a new one first")
        return _knows_classes(ModelChoice(current, "current model"), top_class)
    if not _names_new(source) and (source != STARTING or Path(source).exists()):
        return _knows_classes(ModelChoice(load_model(source), Path(source).name), top_class)
    note = ""
    if source == STARTING:
        starting = load_starting_model()
        if starting.in_channels == in_channels and top_class <= starting.n_classes:
            choice = ModelChoice(starting, "starting model")
        else:
            source = f"{NEW}: {preset_for_device(device_type)}"
            note = (
                f"the starting model reads {starting.in_channels} channel(s) and knows {starting.n_classes - 1} "
                f"object class(es); this image has {in_channels} channel(s) and the annotation "
                f"{max(top_class - 1, 1)} class(es): training a new {source.partition(': ')[2]} model"
            )
    if _names_new(source):
        preset = source.partition(": ")[2] or preset_for_device(device_type)
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        model = new_model(preset, class_names or ["object"], in_channels=in_channels, seed=seed)
        choice = ModelChoice(model, f"new {preset} model", note)
    if current is not None:
        choice.model.object_shape = current.object_shape  # the kind of objects chosen for this work
    return _knows_classes(choice, top_class)


def _names_new(source: str) -> bool:
    """Whether ``source`` asks for a new model ("new" or "new: PRESET")."""
    return source == NEW or source.startswith(f"{NEW}: ")


def _knows_classes(choice: ModelChoice, top_class: int) -> ModelChoice:
    """``choice``, checked to know every class painted."""
    if top_class > choice.model.n_classes:
        raise InputError(
            f"the annotation uses class {top_class} but the model knows {choice.model.n_classes - 1} object "
            "class(es); start a new model to add classes"
        )
    return choice
