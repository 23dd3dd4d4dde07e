"""Layers stay apart: no service imports another, and the shared library (services/core)
imports no service. Read from the source (ast), so an import inside a function, a relative
import or an `importlib.import_module("services....")` counts as much as one at the top.

Why: each Lambda image installs only its own service's dependencies, and a service reaching
into another couples their deployments (the webhook once imported the notifier's rendering;
the insights document now lives in services/core/insights)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parents[2] / "services"
CORE = "core"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    line: int
    target: str  # the module imported, dotted and absolute


def _module_name(path: Path) -> str:
    parts = path.relative_to(SERVICES.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(path: Path) -> str:
    """The package a relative import in `path` starts from."""
    return ".".join(path.relative_to(SERVICES.parent).parts[:-1])


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = _package(path).split(".")
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(path: Path, source: str | None = None) -> Iterator[Import]:
    """Every module `path` imports: `import a.b`, `from a import b` (as `a.b` as well as `a`:
    `from services import notifier` imports a service), relative forms, and literal
    `importlib.import_module` / `__import__` calls."""
    module = _module_name(path)
    tree = ast.parse(source if source is not None else path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(path, node)
            yield Import(module, node.lineno, target)
            for alias in node.names:
                yield Import(module, node.lineno, f"{target}.{alias.name}")
        elif isinstance(node, ast.Call) and _dynamic_import(node):
            argument = node.args[0]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                yield Import(module, node.lineno, argument.value)


def _dynamic_import(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("import_module", "__import__") and bool(node.args)


def service_of(dotted: str) -> str | None:
    """`services.<svc>.…` → `<svc>`, for the packages under services/ only."""
    parts = dotted.split(".")
    if len(parts) < 2 or parts[0] != "services":
        return None
    return parts[1] if (SERVICES / parts[1]).is_dir() else None


def violations(path: Path, source: str | None = None) -> list[str]:
    own = service_of(_module_name(path))
    if own is None:
        return []
    found = []
    for imported in imports_of(path, source):
        other = service_of(imported.target)
        if other is None or other in (own, CORE):
            continue
        rule = "core imports no service" if own == CORE else "no service imports another"
        found.append(f"{imported.module}:{imported.line} imports {imported.target} ({rule})")
    return sorted(set(found))


MODULES = sorted(SERVICES.rglob("*.py"))


def test_every_service_package_is_seen() -> None:
    packages = {service_of(_module_name(path)) for path in MODULES}
    assert {"core", "webhook", "merger", "submitter", "notifier", "ops"} <= packages


def test_no_service_imports_another_and_core_imports_none() -> None:
    problems = [problem for path in MODULES for problem in violations(path)]
    assert problems == []


@pytest.mark.parametrize(
    ("where", "source"),
    [
        ("webhook/app.py", "from services.notifier.notify import render_email\n"),
        ("webhook/app.py", "from services import notifier\n"),
        ("webhook/app.py", "def f():\n    import services.notifier.handler\n"),
        ("webhook/app.py", "from ..notifier import notify\n"),
        ("webhook/app.py", "import importlib\nimportlib.import_module('services.ops.cli')\n"),
        ("core/speech/aws.py", "from services.submitter.job_events import parse_event\n"),
        ("core/speech/aws.py", "from ...merger import compact\n"),
        ("core/aws.py", "from services.webhook import app\n"),
    ],
)
def test_the_check_catches_each_form_of_import(where: str, source: str) -> None:
    assert violations(SERVICES / where, source) != []


@pytest.mark.parametrize(
    ("where", "source"),
    [
        ("webhook/app.py", "from services.core.insights.document import InsightsDocument\n"),
        ("webhook/app.py", "from services.webhook.zoom_signature import zoom_signature\n"),
        ("webhook/app.py", "from . import zoom_signature\n"),
        ("core/speech/aws.py", "from ..insights import document\n"),
        ("core/speech/aws.py", "from services import core\n"),
    ],
)
def test_the_check_allows_core_and_the_service_s_own_modules(where: str, source: str) -> None:
    assert violations(SERVICES / where, source) == []
