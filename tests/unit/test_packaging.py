"""What an install needs: pyproject.toml declares every distribution that the installed
code imports, pinned as in the requirements files (which Dockerfiles and ``make``
install), and a worker installed without the ``worker`` extra still starts."""

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for line in requirements:
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            name, sep, version = line.partition("==")
            assert sep, f"not pinned: {line}"
            pins[_normalized(name)] = version.strip()
    return pins


def _declared() -> dict[str, str]:
    project = PYPROJECT["project"]
    extras = [req for reqs in project["optional-dependencies"].values() for req in reqs]
    return _pins([*project["dependencies"], *extras])


def _installed_sources() -> tuple[set[str], list[Path]]:
    """The top-level names the wheel installs, and their source files."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    packages = {pattern.rstrip("*").rstrip(".") for pattern in setuptools["packages"]["find"]["include"]}
    packages = {name for name in packages if "." not in name}
    modules = set(setuptools.get("py-modules", []))
    files = [path for name in sorted(packages) for path in (ROOT / name).rglob("*.py")]
    return packages | modules, files + [ROOT / f"{name}.py" for name in sorted(modules)]


def _imported_top_level(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_is_declared() -> None:
    ours, files = _installed_sources()
    assert {"agentq", "api", "tasks", "workers", "beat_schedule"} <= ours
    distributions = packages_distributions()
    declared = _declared()

    undeclared = {}
    for path in files:
        for name in _imported_top_level(path) - ours - set(sys.stdlib_module_names):
            found = {_normalized(dist) for dist in distributions.get(name, [])}
            if not found & declared.keys():
                undeclared[name] = f"{path.relative_to(ROOT)} (from {sorted(found) or 'nothing installed'})"

    assert undeclared == {}


def test_declared_pins_match_the_requirements_files() -> None:
    pinned: dict[str, str] = {}
    for name in ("requirements.txt", "requirements-worker.txt"):
        pinned |= _pins((ROOT / name).read_text().splitlines())

    mismatched = {
        name: (version, pinned.get(name))
        for name, version in _declared().items()
        if pinned.get(name) != version
    }

    assert mismatched == {}
