"""The core must run where napari and Qt are absent (a GPU server, a cluster node)."""

import subprocess
import sys

CORE = [
    "model",
    "geometry",
    "tiling",
    "augment",
    "losses",
    "data",
    "train",
    "predict",
    "objects",
    "io",
    "cli",
    "normalize",
    "layout",
    "bundle",
    "device",
    "metrics",
    "synthetic",
    "validation",
]
GUI = ("napari", "qtpy", "magicgui", "superqt", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy")


def test_core_never_imports_the_gui():
    imports = "; ".join(f"import napari_unet.{m}" for m in CORE)
    code = (
        f"import sys, napari_unet; {imports}; "
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {GUI!r}); print(bad)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_core_imports_when_napari_cannot_be_imported():
    blocker = (
        "import sys\nclass Block:\n    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {GUI!r}: raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    code = blocker + "import napari_unet, napari_unet.cli\nprint(napari_unet.PRESETS['paper'])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_training_and_prediction_run_where_dask_is_not_installed():
    """A bare GPU machine has torch, numpy and scikit-image but maybe no dask or zarr."""
    blocker = (
        "import sys\nclass Block:\n    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('dask', 'zarr', 'distributed'): raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    code = blocker + (
        "import numpy as np, napari_unet as nu\n"
        "m = nu.new_model('light', ['n'], depth=2, base_filters=4, seed=0)\n"
        "image = np.random.default_rng(0).random((64, 64))\n"
        "annotation = np.where(image > 0.5, 2, 1).astype(np.uint8)\n"
        "nu.drain(nu.fit(m, [image], [annotation], nu.TrainConfig(steps=2, batch_size=1, device='cpu')))\n"
        "print(nu.segment(m, image).classes.shape)\n"
        "try:\n    nu.segment_lazy\nexcept ImportError as error:\n    print('lazy:', error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["(64, 64)", "lazy: blocked dask"]
