"""The distribution, built as a wheel and installed elsewhere, carries everything it needs."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_the_catalog_and_the_sandbox(tmp_path: Path) -> None:
    """A wheel installed into a fresh venv, run from another directory, loads the shipped catalog."""
    # Build from a copy: setuptools leaves build/ and egg-info behind in the tree it builds.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "node_modules", ".model-migration", ".pytest_cache",
    ))
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("model_migration-*.whl")

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    # The fresh venv sees the wheel's files first and this venv's third-party packages after
    # them; a bare path in a .pth does not run this venv's editable-install hooks.
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    Path(purelib, "deps.pth").write_text(f"{target}\n{site.getsitepackages()[0]}\n")

    probe = textwrap.dedent(
        """
        import catalog, gitlab_sandbox, model_migration, pathlib
        from gitlab_sandbox import datasets
        assert (pathlib.Path(gitlab_sandbox.__file__).parent / "promptfoo_grader.js").is_file(), "the promptfoo grader"
        from model_migration.catalog import load_catalog
        c = load_catalog()
        print(model_migration.__file__)
        print(len(c.models), len(c.features), min(len(datasets.load(f.dataset)) for f in c.features))
        """
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ran = subprocess.run([str(python), "-c", probe], cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    module_file, counts = ran.stdout.strip().splitlines()
    assert Path(module_file).is_relative_to(target), module_file
    models, features, examples = (int(n) for n in counts.split())
    assert models > 0 and features > 0
    assert examples >= 200  # every catalog dataset ships in the wheel
