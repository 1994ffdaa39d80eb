"""Workflow modules import their sibling modules so that the workflow sandbox passes them through."""

from __future__ import annotations

import re
from pathlib import Path

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
#: ``from workflows import views``: the sandbox sees the package ``workflows`` (loaded afresh for
#: the workflow module), and Python imports ``views`` as a submodule of it without asking the
#: sandbox, so views.py runs again in every workflow run: ~100 kB and its import time per open
#: workflow. ``import workflows.views as views`` is passed through by name.
PACKAGE_FROMLIST = re.compile(r"^\s*from workflows import ", re.MULTILINE)


def test_no_workflow_module_imports_a_sibling_through_the_package() -> None:
    """No ``from workflows import x`` in workflows/: write ``import workflows.x as x``."""
    offenders = [p.name for p in sorted(WORKFLOWS.glob("*.py")) if PACKAGE_FROMLIST.search(p.read_text())]
    assert offenders == [], f"{offenders}: use `import workflows.<module> as <module>` inside imports_passed_through()"
