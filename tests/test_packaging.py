"""pyproject.toml as setuptools reads it: the licence as an SPDX expression with its file
(PEP 639; the old ``license = {text = ...}`` table becomes a build error for setuptools from
2027-02-18), and one version, ``bot.__version__``."""

from __future__ import annotations

import ast
import re
import tomllib

from packaging.licenses import canonicalize_license_expression
from packaging.specifiers import SpecifierSet

from tests.processes import REPO


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_licence_is_an_spdx_expression_with_its_file() -> None:
    project = _pyproject()["project"]
    assert isinstance(project["license"], str)
    assert canonicalize_license_expression(project["license"]) == project["license"] == "MIT"
    assert "License :: " not in " ".join(project.get("classifiers", []))  # PEP 639 forbids both
    (name,) = project["license-files"]
    text = (REPO / name).read_text(encoding="utf-8")
    assert text.startswith("MIT License\n") and 'THE SOFTWARE IS PROVIDED "AS IS"' in text
    # PEP 639's fields arrived in setuptools 77: an older one must not be picked for the build.
    (setuptools,) = [r for r in _pyproject()["build-system"]["requires"] if r.startswith("setuptools")]
    assert "76.9" not in SpecifierSet(setuptools.removeprefix("setuptools")) and "77.0" in SpecifierSet(
        setuptools.removeprefix("setuptools")
    )


def test_the_version_has_one_source() -> None:
    config = _pyproject()
    assert "version" not in config["project"] and config["project"]["dynamic"] == ["version"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "bot.__version__"}
    # setuptools reads the attribute without importing bot: it must stay a plain literal.
    tree = ast.parse((REPO / "bot" / "__init__.py").read_text(encoding="utf-8"))
    (value,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "__version__"]
    assert isinstance(value, ast.Constant) and re.fullmatch(r"\d+\.\d+\.\d+", value.value)
