"""Image and label files: images read from TIFF, PNG, JPEG or .npy; label TIFFs that Fiji opens; atomic writes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile

from napari_unet.errors import InputError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".npy")


def _mode_for(target: Path) -> int:
    """Permissions for a file written at ``target``: those of the file it replaces, else a new file's.

    A new file gets 0666 less the umask, so colleagues can read exports in a shared folder.
    """
    if target.exists():
        return target.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Write a file through a temporary name in the same folder, then rename it into place.

    ``write`` receives the temporary path. A crash or a full disk leaves any earlier file intact and
    no half-written file behind.

    Raises
    ------
    InputError
        If the file exists and ``overwrite`` is false, or the folder does not exist or is not writable.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise InputError(f"{target} exists already; choose another name or allow overwriting")
    folder = target.parent
    if not folder.is_dir():
        raise InputError(f"cannot write {target}: the folder {folder} does not exist")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    except OSError as error:
        raise InputError(f"cannot write to {folder}: {error.strerror or error}") from error
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.chmod(temporary, _mode_for(target))  # mkstemp makes it private (0600)
        os.replace(temporary, target)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise InputError(f"could not write {target}: {error.strerror or error}") from error
        raise
    return target


def default_axes(ndim: int) -> str:
    """ImageJ axis letters for a label array of ``ndim`` dimensions (YX, ZYX, TZYX)."""
    if not 2 <= ndim <= 4:
        raise InputError(f"label images must have 2 to 4 dimensions, not {ndim}")
    return "TZYX"[4 - ndim :]


def write_labels(path: str | os.PathLike, labels: np.ndarray, axes: str | None = None, overwrite: bool = False) -> Path:
    """Write a label image as a TIFF that Fiji opens with the right dimensions, atomically.

    uint16 when the largest label fits (an ImageJ hyperstack), uint32 otherwise (a plain TIFF with the
    axes in its description, which Fiji reads as 32-bit).

    Parameters
    ----------
    path : str or path
        Destination ``.tif`` file.
    labels : numpy.ndarray
        Non-negative integer labels, 2D to 4D.
    axes : str, optional
        Axis letters (default YX, ZYX or TZYX by dimension).
    overwrite : bool
        Replace an existing file.
    """
    array = np.asarray(labels)
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise InputError(f"labels must be integers, not {array.dtype}")
    if array.size and array.min() < 0:
        raise InputError("labels must not be negative")
    axes = axes or default_axes(array.ndim)
    if len(axes) != array.ndim:
        raise InputError(f"axes {axes!r} do not match a {array.ndim}D label image")
    top = int(array.max()) if array.size else 0
    if top <= np.iinfo(np.uint16).max:
        data, options = array.astype(np.uint16), {"imagej": True, "metadata": {"axes": axes}}
    else:
        data, options = array.astype(np.uint32), {"metadata": {"axes": axes}}
    return atomic_write(path, lambda temporary: tifffile.imwrite(temporary, data, **options), overwrite=overwrite)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image (TIFF, PNG, JPEG, BMP or ``.npy``) into a numpy array.

    Raises
    ------
    InputError
        If the file is missing, of an unknown kind, truncated or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InputError(f"{path}: unknown image type {suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    try:
        if suffix in (".tif", ".tiff"):
            array = tifffile.imread(path)
        elif suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            from skimage import io as skio

            array = skio.imread(path)
    except Exception as error:  # readers raise many types for a bad file; all mean the same to the user
        raise InputError(f"cannot read {path} as an image: {error}") from error
    array = np.asarray(array)
    if array.ndim < 2 or array.size == 0:
        raise InputError(f"cannot read {path} as an image: it holds no 2D image (shape {array.shape})")
    return array


def write_probabilities(path: str | os.PathLike, probabilities: np.ndarray, overwrite: bool = False) -> Path:
    """Write class probabilities (K, *spatial) as a float32 ImageJ hyperstack with one channel per class."""
    array = np.moveaxis(np.asarray(probabilities, dtype=np.float32), 0, -3)
    axes = {3: "CYX", 4: "ZCYX", 5: "TZCYX"}.get(array.ndim)
    if axes is None:
        raise InputError(f"cannot write {array.ndim - 1}D probabilities as a TIFF")
    options = {"imagej": True, "metadata": {"axes": axes}}
    return atomic_write(path, lambda temporary: tifffile.imwrite(temporary, array, **options), overwrite=overwrite)
