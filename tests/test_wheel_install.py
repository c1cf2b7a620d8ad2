"""fmp-install from a real (non-editable) wheel: profiles and assets ship inside it.

The editable install of the test venv finds them at the top of the checkout, so
only a built wheel shows that ``pip install .`` works on a machine without one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

PROBE = """\
import json, installer, installer.paths as p
from installer.profile import available_profiles
print(json.dumps({
    "installer": installer.__file__,
    "data_root": str(p.data_root()),
    "profiles_dir": str(p.profiles_dir()),
    "assets_dir": str(p.assets_dir()),
    "profiles": available_profiles(),
    "assets": sorted(f.name for f in p.assets_dir().iterdir()),
}))
"""


def _build_wheel(out: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)]
    if importlib.util.find_spec("hatchling") is not None:
        cmd.insert(4, "--no-build-isolation")  # the backend is here: no index needed
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        pytest.fail(f"pip wheel failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    (wheel,) = out.glob("fmp_install-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, unpacked as pip would install it into site-packages."""
    work = tmp_path_factory.mktemp("wheel")
    with zipfile.ZipFile(_build_wheel(work / "dist")) as whl:
        whl.extractall(work / "site")
    return work / "site"


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FMP_DATA_DIR"}
    # Ahead of the venv's site-packages, where the editable install points at the checkout.
    env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_profiles_and_assets_are_found_inside_the_installed_package(
    installed: Path, tmp_path: Path
) -> None:
    done = _run(installed, tmp_path, "-c", PROBE)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    package = installed / "installer"
    assert Path(got["installer"]) == package / "__init__.py"
    assert Path(got["data_root"]) == package / "_data"
    assert Path(got["profiles_dir"]) == package / "_data" / "profiles"
    assert Path(got["assets_dir"]) == package / "_data" / "assets"
    assert got["profiles"] == sorted(p.name for p in (REPO / "profiles").iterdir() if p.is_dir())
    assert got["assets"] == sorted(f.name for f in (REPO / "assets").iterdir())


def test_validate_an_example_from_another_directory(installed: Path, tmp_path: Path) -> None:
    example = tmp_path / "answers.yaml"
    example.write_text((REPO / "examples" / "rke-ceph.yaml").read_text())
    done = _run(installed, tmp_path, "-m", "installer.cli", "validate", "--answers", "answers.yaml")
    assert done.returncode == 0, done.stderr
    assert "answers.yaml: valid (rke-ceph, 6 hosts)" in done.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(example.read_text().replace("profile: rke-ceph", "profile: nope"))
    done = _run(installed, tmp_path, "-m", "installer.cli", "validate", "--answers", "broken.yaml")
    assert done.returncode == 2
    assert "broken.yaml:" in done.stderr and "unknown profile 'nope'" in done.stderr
