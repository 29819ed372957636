"""The core must run where napari and Qt are absent (a GPU server, a cluster node)."""

import subprocess
import sys

GUI = ("napari", "qtpy", "magicgui", "superqt", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy")

#: Modules of the napari layer: the only ones allowed to import napari or Qt (and the import-linter
#: contract in pyproject.toml that says so).
NAPARI_LAYER = ("_widgets", "_reader", "_writer", "_sample_data", "_launch")


def test_core_never_imports_the_gui():
    """Every module outside the napari layer, found by walking the package, imports without napari or Qt."""
    code = (
        "import importlib, pkgutil, sys, napari_unet\n"
        "core = []\n"
        f"for top in pkgutil.iter_modules(napari_unet.__path__, 'napari_unet.'):\n"
        f"    if top.name.split('.')[1] in {NAPARI_LAYER!r}: continue\n"
        "    core.append(importlib.import_module(top.name).__name__)\n"
        "    if top.ispkg:\n"
        "        walked = pkgutil.walk_packages(sys.modules[top.name].__path__, top.name + '.')\n"
        "        core += [importlib.import_module(m.name).__name__ for m in walked]\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {GUI!r})\n"
        "print(len(core), bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    count, bad = result.stdout.split(" ", 1)
    assert int(count) > 40  # the walk found the subpackages' modules, not just the top level
    assert bad.strip() == "[]"


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
