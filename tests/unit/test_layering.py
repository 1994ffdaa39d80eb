"""Who may import whom: the layer rules from the house style, checked over the source with ``ast``."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {"__pycache__", "build", "dist", "node_modules"}


# --- the checker -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One imported module: ``import a.b`` or ``from a import x, y`` (x and y may be submodules)."""

    line: int
    module: str
    names: tuple[str, ...] = ()
    text: str = ""

    def candidates(self) -> tuple[str, ...]:
        """The module, plus ``module.name`` for each name, since a from-import may name a submodule."""
        return (self.module, *(f"{self.module}.{n}" for n in self.names if n != "*"))

    def __str__(self) -> str:
        return self.text


def _package(module_name: str, is_init: bool) -> str:
    return module_name if is_init else module_name.rpartition(".")[0]


def _resolve(node: ast.ImportFrom, package: str) -> str:
    if node.level == 0:
        return node.module or ""
    parts = package.split(".") if package else []
    base = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
    return ".".join([*base, *([node.module] if node.module else [])])


def _is_dynamic_import(node: ast.Call) -> bool:
    func = node.func
    if isinstance(func, ast.Name) and func.id == "__import__":
        return True
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "import_module"
        and isinstance(func.value, ast.Name)
        and func.value.id == "importlib"
    )


def imports_in(source: str, module_name: str = "", *, is_init: bool = False) -> list[Import]:
    """Every import in ``source``, at any depth (functions, ``with`` and ``if`` blocks), in line order."""
    tree = ast.parse(source)
    package = _package(module_name, is_init)
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(node.lineno, alias.name, text=f"import {alias.name}") for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(node, package)
            names = tuple(alias.name for alias in node.names)
            dots = "." * node.level
            text = f"from {dots}{node.module or ''} import {', '.join(names)}"
            found.append(Import(node.lineno, module, names, text=text))
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append(Import(node.lineno, arg.value, text=f"{ast.unparse(node.func)}({arg.value!r})"))
    return sorted(found, key=lambda i: i.line)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _is_stdlib(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names


@dataclass(frozen=True)
class Rule:
    """Files under ``scope`` may import only ``allowed`` (if given) and never ``forbidden``."""

    description: str
    scope: str
    forbidden: tuple[str, ...] = ()
    allowed: tuple[str, ...] | None = None
    allow_stdlib: bool = False

    def _allowed(self, name: str) -> bool:
        if self.allowed is None:
            return True
        return (self.allow_stdlib and _is_stdlib(name)) or any(_within(name, a) for a in self.allowed)

    def breaks(self, imp: Import) -> bool:
        if any(_within(c, f) for c in imp.candidates() for f in self.forbidden):
            return True
        if self.allowed is None:
            return False
        # `from model_migration import domain` is fine: every name it imports is allowed.
        names = imp.candidates()[1:]
        return not (self._allowed(imp.module) or (names and all(self._allowed(n) for n in names)))

    def violations(self, source: str, module_name: str = "", *, is_init: bool = False) -> list[Import]:
        return [imp for imp in imports_in(source, module_name, is_init=is_init) if self.breaks(imp)]


DOMAIN = Rule(
    "domain imports only the standard library, pydantic, numpy and model_migration.domain",
    "model_migration/domain",
    allowed=("pydantic", "numpy", "model_migration.domain"),
    allow_stdlib=True,
)
CLIENTS = Rule(
    "clients must not import temporalio, workflows or activities",
    "model_migration/clients",
    forbidden=("temporalio", "workflows", "activities"),
)
ACTIVITIES = Rule(
    "activities must not import workflows",
    "activities",
    forbidden=("workflows",),
)
WORKFLOWS = Rule(
    "workflows must not import clients, settings, non-deterministic or vendor modules",
    "workflows",
    forbidden=(
        "model_migration.clients",
        "model_migration.settings",
        "os",
        "time",
        "random",
        "structlog",
        "gitlab",
        "requests",
        "httpx",
        "activities.gitlab",
    ),
)
PRODUCT = ("model_migration", "workflows", "activities", "worker", "catalog")
SANDBOX = Rule(
    "the GitLab sandbox imports nothing of the product",
    "gitlab_sandbox",
    forbidden=PRODUCT,
)
RULES = (DOMAIN, CLIENTS, ACTIVITIES, WORKFLOWS, SANDBOX)
#: The only product modules that start the sandbox: the ``sandbox`` and ``demo`` commands.
SANDBOX_STARTERS = {"model_migration/services.py", "model_migration/demo.py", "model_migration/demo_rollout.py"}


# --- the project's files ---------------------------------------------------------------------


def _project_files() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts[:-1]
        if any(p.startswith(".") or p in SKIPPED_DIRS or p.endswith(".egg-info") for p in parts):
            continue
        yield path


ALL_FILES = list(_project_files())


def _files(rule: Rule) -> list[Path]:
    scope = ROOT / rule.scope
    return [p for p in ALL_FILES if p.is_relative_to(scope)]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _assert_obeys(rule: Rule, path: Path, source: str | None = None) -> None:
    source = path.read_text(encoding="utf-8") if source is None else source
    bad = rule.violations(source, _module_name(path), is_init=path.name == "__init__.py")
    listing = "\n".join(f"  {_rel(path)}:{imp.line}: {imp}" for imp in bad)
    assert not bad, f"{rule.description}; offending imports:\n{listing}"


def _params(rule: Rule) -> list[pytest.param]:
    return [pytest.param(p, id=_rel(p)) for p in _files(rule)]


# --- the rules over the project --------------------------------------------------------------


def test_every_python_file_parses() -> None:
    """Every project .py file parses, so no file escapes the layer rules."""
    assert ALL_FILES, f"no Python files found under {ROOT}"
    broken = []
    for path in ALL_FILES:
        try:
            ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except SyntaxError as exc:
            broken.append(f"{_rel(path)}:{exc.lineno}: {exc.msg}")
    assert not broken, "files that do not parse:\n" + "\n".join(broken)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.scope)
def test_each_rule_covers_files(rule: Rule) -> None:
    """Each rule's folder holds Python files, so a moved folder cannot make a rule pass vacuously."""
    assert [p for p in _files(rule) if p.name != "__init__.py"], f"no modules under {rule.scope}"


@pytest.mark.parametrize("path", _params(DOMAIN))
def test_domain_imports_only_stdlib_pydantic_numpy_and_domain(path: Path) -> None:
    """Domain modules import only the standard library, pydantic, numpy and model_migration.domain."""
    _assert_obeys(DOMAIN, path)


@pytest.mark.parametrize("path", _params(CLIENTS))
def test_clients_do_not_import_temporal_workflows_or_activities(path: Path) -> None:
    """Clients import neither temporalio nor workflows nor activities."""
    _assert_obeys(CLIENTS, path)


@pytest.mark.parametrize("path", _params(ACTIVITIES))
def test_activities_do_not_import_workflows(path: Path) -> None:
    """Activities never import workflows."""
    _assert_obeys(ACTIVITIES, path)


@pytest.mark.parametrize("path", _params(WORKFLOWS))
def test_workflows_stay_deterministic_and_client_free(path: Path) -> None:
    """Workflows import no clients, settings, os/time/random, structlog or vendor SDKs."""
    _assert_obeys(WORKFLOWS, path)


@pytest.mark.parametrize("path", _params(SANDBOX))
def test_sandbox_imports_nothing_of_the_product(path: Path) -> None:
    """The GitLab sandbox is a house of its own: no product module reaches into it."""
    _assert_obeys(SANDBOX, path)


def test_product_starts_the_sandbox_only_from_its_commands() -> None:
    """Only the sandbox and demo commands import gitlab_sandbox; workers and workflows never do."""
    product = [p for p in ALL_FILES if p.relative_to(ROOT).parts[0] in {"model_migration", "workflows", "activities", "worker.py"}]
    importers = {
        _rel(p) for p in product
        if any(_within(c, "gitlab_sandbox") for imp in imports_in(p.read_text(encoding="utf-8"), _module_name(p)) for c in imp.candidates())
    }
    assert importers and importers <= SANDBOX_STARTERS, importers


# --- the checker itself ----------------------------------------------------------------------

BAD_WORKFLOW = """\
import os
import osmosis
from datetime import time, timedelta
from temporalio import workflow
with workflow.unsafe.imports_passed_through():
    from activities import gitlab, payloads
    from activities.payloads import Activity
    from model_migration.clients.gitlab import GitLabClient
    from model_migration import settings
def helper():
    import random
    import importlib
    return importlib.import_module("structlog")
if False:
    import time as clock
"""


def test_checker_catches_workflow_violations() -> None:
    """The checker flags forbidden imports at any depth, with lines, and spares near-misses."""
    bad = WORKFLOWS.violations(BAD_WORKFLOW, "workflows.sample")
    assert [(imp.line, str(imp)) for imp in bad] == [
        (1, "import os"),
        (6, "from activities import gitlab, payloads"),
        (8, "from model_migration.clients.gitlab import GitLabClient"),
        (9, "from model_migration import settings"),
        (11, "import random"),
        (13, "importlib.import_module('structlog')"),
        (15, "import time"),
    ]


BAD_DOMAIN = """\
from __future__ import annotations
import re
import yaml
from pydantic import BaseModel
import pydantic_settings
from temporalio import workflow
from model_migration.domain.stages import FeatureStage, MigrationStage
from model_migration import domain
from model_migration import settings
from . import models
from .. import catalog
from .errors import CommandRejected
import numpy as np
from numpy.typing import NDArray
import numpy_financial
import scipy.stats
"""


def test_checker_catches_domain_violations() -> None:
    """The domain allowlist refuses vendor and outer-layer imports (numpy is allowed, scipy is not), resolving relative ones."""
    bad = DOMAIN.violations(BAD_DOMAIN, "model_migration.domain.sample")
    assert [(imp.line, imp.module) for imp in bad] == [
        (3, "yaml"),
        (5, "pydantic_settings"),
        (6, "temporalio"),
        (9, "model_migration"),
        (11, "model_migration"),
        (15, "numpy_financial"),
        (16, "scipy.stats"),
    ]


def test_checker_resolves_relative_imports_in_packages() -> None:
    """Relative imports resolve against the package, including in an ``__init__`` module."""
    found = imports_in("from . import a\nfrom ..b import c\n", "pkg.sub", is_init=True)
    assert [(imp.module, imp.candidates()) for imp in found] == [
        ("pkg.sub", ("pkg.sub", "pkg.sub.a")),
        ("pkg.b", ("pkg.b", "pkg.b.c")),
    ]


def test_checker_failure_names_file_line_and_import() -> None:
    """A failing rule's message names the rule, then each offending file:line and import."""
    probe = ROOT / "workflows" / "_layering_probe.py"  # never written: the source is passed in
    source = "from temporalio import workflow\nimport time\nfrom model_migration.settings import Settings\n"
    with pytest.raises(AssertionError) as info:
        _assert_obeys(WORKFLOWS, probe, source)
    message = str(info.value)
    assert message.startswith(WORKFLOWS.description + "; offending imports:\n")
    assert "  workflows/_layering_probe.py:2: import time\n" in message
    assert "  workflows/_layering_probe.py:3: from model_migration.settings import Settings" in message
    assert ":1:" not in message


def test_checker_passes_clean_source() -> None:
    """A workflow importing only allowed modules passes."""
    source = "import asyncio\nfrom temporalio import workflow\nfrom activities.payloads import Activity\n"
    _assert_obeys(WORKFLOWS, ROOT / "workflows" / "_layering_probe.py", source)
