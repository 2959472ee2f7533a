"""An installed wheel is a working gac: the behaviour policies are package data, so a fresh
environment with the wheel (and no source tree) makes locomotion datasets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import sys
from pathlib import Path
import gac
from gac.data.behaviour import load_policies, policies_dir
from gac.data.datasets import make_dataset
from gac.data.hdf5 import load_hdf5

installed = Path(gac.__file__).resolve()
assert Path(sys.prefix).resolve() in installed.parents, installed  # the wheel's copy, not src/
assert Path(sys.prefix).resolve() in policies_dir().resolve().parents, policies_dir()
for body in ("hopper", "walker2d", "halfcheetah"):
    assert load_policies(body).actors, body
store = load_hdf5(make_dataset("hopper-medium", steps=600, seed=0, out=sys.argv[1], progress=False))
print("ok", store.num_steps, installed)
"""


def test_a_wheel_installed_in_a_fresh_venv_makes_locomotion_datasets(tmp_path):
    source = tmp_path / "source"  # built from a copy: the build leaves nothing in the checkout
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), str(source)], check=True, cwd=tmp_path)
    wheel, = dist.glob("gac-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    # The wheel goes into the fresh venv; its dependencies (torch, gymnasium, ...) are the
    # ones of this environment, seen through a path entry (which runs none of its .pth files,
    # so an editable gac there stays invisible).
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, cwd=tmp_path)
    deps = [p for p in sys.path if p.endswith("site-packages")] or [sysconfig.get_paths()["purelib"]]
    (site / "zz_deps.pth").write_text("\n".join(deps) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GAC_POLICIES")}
    out = subprocess.run([str(python), "-c", CHECK, str(tmp_path / "hopper.hdf5")], cwd=tmp_path,
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("ok 600")
