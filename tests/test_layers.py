"""The import-linter contracts of pyproject.toml: they hold, and they fail when a module breaks the layers."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed")


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess:
    """Run lint-imports with the project's contracts on the napari_unet package found in ``package_parent``."""
    env = {"PATH": str(LINT_IMPORTS.parent), "PYTHONPATH": str(package_parent), "HOME": str(package_parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=package_parent,
    )


@pytest.fixture
def package_copy(tmp_path):
    """A copy of the package's sources, to break on purpose."""
    shutil.copytree(ROOT / "src" / "napari_unet", tmp_path / "napari_unet", ignore=shutil.ignore_patterns("*.pt"))
    return tmp_path


def add_import(module: Path, statement: str) -> None:
    """Append an import at the end of a module's source."""
    module.write_text(module.read_text() + f"\n{statement}  # noqa\n")


def test_the_contracts_hold():
    result = lint_imports(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_core_module_that_imports_napari_breaks_a_contract(package_copy):
    add_import(package_copy / "napari_unet" / "images" / "axes.py", "import napari")
    result = lint_imports(package_copy)
    assert result.returncode != 0
    assert "Only the napari layer imports napari, Qt or magicgui BROKEN" in result.stdout
    assert "napari_unet.images.axes -> napari" in result.stdout


def test_a_stage_that_imports_a_later_stage_breaks_the_layers(package_copy):
    add_import(package_copy / "napari_unet" / "models" / "model.py", "from napari_unet.predict import segment")
    result = lint_imports(package_copy)
    assert result.returncode != 0
    assert "Stages import only the stages below them BROKEN" in result.stdout
    assert "napari_unet.models.model -> napari_unet.predict.segment" in result.stdout
