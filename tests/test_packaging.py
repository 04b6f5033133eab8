"""The distribution ships what `pip install .` users need, dropin included."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _listed_packages() -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return {line.strip() for line in parser["options"]["packages"].splitlines() if line.strip()}


def test_every_package_is_listed_in_setup_cfg():
    on_disk = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "revenge").rglob("__init__.py")
        if "__pycache__" not in path.parts
    }
    listed = _listed_packages()
    assert on_disk - listed == set(), "packages missing from setup.cfg"
    assert "twisted.plugins" in listed
    assert not (ROOT / "twisted" / "plugins" / "__init__.py").exists()
    assert not (ROOT / "twisted" / "__init__.py").exists()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--no-build-isolation", "--wheel-dir", str(out), str(ROOT)],
        check=True,
        cwd=out,
        timeout=300,
    )
    (built,) = out.glob("revenge-*.whl")
    return built


def test_wheel_ships_the_dropin_but_not_a_twisted_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "twisted/plugins/revenge_plugin.py" in names
    # Shipping either file would shadow Twisted's own packages.
    assert "twisted/__init__.py" not in names
    assert "twisted/plugins/__init__.py" not in names
    assert "revenge/server/tap.py" in names


def test_plain_install_on_read_only_site_packages_lists_revenge(wheel, tmp_path):
    """
    A non-editable install into a read-only location: twistd must still find
    the plugin, even though it cannot write its dropin.cache there.
    """
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    # Root ignores file modes, so besides removing write permission, a
    # directory squats the cache's name: reading and writing it both fail,
    # as on a read-only filesystem.
    (target / "twisted" / "plugins" / "dropin.cache").mkdir()
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    # -S keeps the editable checkout (a .pth file) off sys.path, so only the
    # wheel's copy of the dropin can be found.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]]),
        "HOME": str(tmp_path),
    }
    script = (
        "import sys; from twisted.scripts.twistd import run; "
        "sys.argv = ['twistd', '--help']; run()"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "revenge" in result.stdout
    assert "Revenge media server core" in result.stdout
    assert "Traceback" not in result.stderr
    # The subcommand itself loads from the read-only copy too.
    sub_help = subprocess.run(
        [sys.executable, "-S", "-c", script.replace("'--help'", "'revenge', '--help'")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sub_help.returncode == 0, sub_help.stderr
    assert "--log-format" in sub_help.stdout
    located = subprocess.run(
        [sys.executable, "-S", "-c",
         "from twisted.plugin import getPlugins, IPlugin\n"
         "import twisted.plugins\n"
         "mods = [p for p in getPlugins(IPlugin) if getattr(p, 'tapname', '') == 'revenge']\n"
         "print(len(mods))"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert located.stdout.strip() == "1", located.stderr


def test_wheel_ships_the_database_migrations(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = ROOT / "revenge" / "db" / "migrations"
    shipped = {
        path.relative_to(ROOT).as_posix()
        for path in [migrations / "env.py", migrations / "script.py.mako",
                     *(migrations / "versions").glob("*.py")]
    }
    assert any("versions/rev_" in name for name in shipped)
    assert shipped <= names
