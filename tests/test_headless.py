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
