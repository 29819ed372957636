"""The napari manifest resolves from an installed wheel and from the editable install, and validates."""

import shutil
import subprocess
import sys
import zipfile
from importlib import metadata, resources
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_resolves_in_this_install():
    from npe2 import PluginManifest

    entry = next(e for e in metadata.entry_points(group="napari.manifest") if e.name == "napari-unet")
    assert entry.value == "napari_unet:napari.yaml"
    path = resources.files("napari_unet") / "napari.yaml"
    assert path.is_file()
    manifest = PluginManifest.from_file(str(path))
    assert manifest.name == "napari-unet"
    assert (ROOT / "napari.yaml").read_text() == path.read_text()


def test_npe2_validate():
    npe2 = shutil.which("npe2", path=str(Path(sys.executable).parent)) or shutil.which("npe2")
    result = subprocess.run([npe2, "validate", "napari-unet"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_wheel_ships_the_manifest_sample_data_and_starting_model(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    wheel = next(tmp_path.glob("napari_unet-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert archive.read("napari_unet/napari.yaml") == (ROOT / "napari.yaml").read_bytes()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        text = archive.read(entry_points).decode()
    assert "napari-unet = napari_unet:napari.yaml" in text
    assert "napari-unet = napari_unet.cli:main" in text
    assert "napari_unet/sample_data/dsb2018_nuclei.tif" in names
    assert "napari_unet/models/nuclei.pt" in names  # the starting model
