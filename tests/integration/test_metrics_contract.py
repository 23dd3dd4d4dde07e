"""Every metric the dashboard shows and every alarm watches is one the code really emits.

An EMF metric is identified by its namespace, its name and its dimensions. The services emit
through `record_metric` (services/core/observability.py), under POWERTOOLS_METRICS_NAMESPACE with
one dimension, `service` = POWERTOOLS_SERVICE_NAME of the function (or task) whose code ran. A
widget line or an alarm that names another service than the emitter's shows nothing, forever.

This test collects what each unit emits from the code itself: the unit's entry point (the image
command the Terraform gives the function, or the task's module), the code that entry point can
reach (the handler function and what it refers to in its own module, then every module under
services/ those import, transitively), and the literal names passed to `record_metric` there. It
pairs them with the unit's POWERTOOLS_SERVICE_NAME (environment.tf), then holds monitoring.tf to
them: every application-metric line and alarm names an emitted (metric, service) pair with exactly
the `service` dimension, and every emitted pair is on the dashboard. AWS/* metrics (SQS, Lambda,
API Gateway, SES, ECS) are AWS's and are not checked here.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_terraform_contract import (
    LAMBDA_MODULE_SOURCE,
    MODULES,
    ROOT,
    ROOT_SCOPE,
    TASK_MODULE_SOURCE,
    TERRAFORM,
    Unresolved,
    labelled,
    locals_of,
    modules_with_source,
    resources,
    unit_environment,
)

SERVICES = ROOT / "services"
OBSERVABILITY = SERVICES / "core" / "observability.py"
# The one place a metric name may be a variable: record_metric forwarding to Powertools.
FORWARDER = (OBSERVABILITY, "record_metric")
# Powertools calls that would change a metric's dimensions (or emit around record_metric): the
# contract below assumes exactly {"service"}, so none of them may appear.
DIMENSION_CHANGERS = {"add_dimension", "set_default_dimensions", "single_metric", "add_metadata"}

Pair = tuple[str, str]  # (metric name, service)


# ---------------------------------------------------------------------------------------------
# The code: which metric names each entry point can emit
# ---------------------------------------------------------------------------------------------


def module_path(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != "services":
        return None
    file = ROOT.joinpath(*parts).with_suffix(".py")
    if file.is_file():
        return file
    package = ROOT.joinpath(*parts, "__init__.py")
    return package if package.is_file() else None


@cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported_names(name: str) -> dict[str, str]:
    """Names bound by the module's imports -> the services module they bring in."""
    path = module_path(name)
    assert path is not None, name
    package = _package_of(name, path)
    bound: dict[str, str] = {}
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if module_path(alias.name):
                    bound[alias.asname or alias.name.split(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                target = submodule if module_path(submodule) else base
                if module_path(target):
                    bound[alias.asname or alias.name] = target
    return bound


def module_imports(name: str) -> set[str]:
    """Every services module this module imports (at the top or inside a function)."""
    return set(imported_names(name).values())


def import_closure(seeds: set[str]) -> set[str]:
    seen: set[str] = set()
    pending = list(seeds)
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        pending.extend(module_imports(current) - seen)
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py too.
        parent = current.rpartition(".")[0]
        if parent and module_path(parent):
            pending.append(parent)
    return seen


def _top_level(tree: ast.Module) -> dict[str, ast.stmt]:
    found: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node
    return found


def _referenced_names(nodes: list[ast.stmt]) -> set[str]:
    """Names the statements use, leaving out annotations (types run no code)."""
    names: set[str] = set()
    pending: list[ast.AST] = list(nodes)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Name):
            names.add(node.id)
        for field, value in ast.iter_fields(node):
            if field in ("annotation", "returns"):
                continue
            if isinstance(value, ast.AST):
                pending.append(value)
            elif isinstance(value, list):
                pending.extend(v for v in value if isinstance(v, ast.AST))
    return names


def reachable_from(module: str, function: str | None) -> tuple[list[ast.stmt], set[str]]:
    """What an entry point can run: the statements of its own module it can reach (the function,
    and the module-level functions, classes and values it refers to, transitively; with no
    function, the whole module, as `python -m` runs it), and the other services modules."""
    path = module_path(module)
    assert path is not None, f"{module} is not a module under services/"
    tree = parsed(path)
    if function is None:
        return list(tree.body), import_closure(module_imports(module)) | {module}
    definitions = _top_level(tree)
    assert function in definitions, f"{module} has no {function}"
    imports = imported_names(module)
    # Code that runs when the module is imported (not definitions, not the imports themselves).
    on_import = [
        node
        for node in tree.body
        if not isinstance(
            node,
            ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Import | ast.ImportFrom,
        )
    ]
    reached: list[ast.stmt] = []
    seen: set[str] = set()
    seeds: set[str] = set()
    pending = [definitions[function], *on_import]
    while pending:
        node = pending.pop()
        reached.append(node)
        for name in _referenced_names([node]):
            if name in imports:
                seeds.add(imports[name])
            elif name in definitions and name not in seen:
                seen.add(name)
                pending.append(definitions[name])
    return reached, import_closure(seeds)


@dataclass(frozen=True)
class Emission:
    name: str
    where: str


def _literal_names(node: ast.expr) -> list[str] | None:
    """A metric name that is a string literal, or a conditional choosing between literals."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = _literal_names(node.body), _literal_names(node.orelse)
        return body + orelse if body is not None and orelse is not None else None
    return None


def _called(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _inside_forwarder(path: Path, nodes: list[ast.stmt]) -> set[int]:
    if path != FORWARDER[0]:
        return set()
    return {
        id(inner)
        for node in nodes
        if isinstance(node, ast.FunctionDef) and node.name == FORWARDER[1]
        for inner in ast.walk(node)
    }


def emissions(path: Path, nodes: list[ast.stmt]) -> Iterator[Emission]:
    """Metric names emitted by these statements; a name that is not a literal fails."""
    forwarder = _inside_forwarder(path, nodes)
    for node in nodes:
        for call in ast.walk(node):
            if not isinstance(call, ast.Call):
                continue
            called = _called(call)
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            assert called not in DIMENSION_CHANGERS, (
                f"{where}: {called} changes the metric's dimensions; the dashboard and alarms "
                "(and this test) assume exactly the service dimension"
            )
            if called not in ("record_metric", "add_metric") or id(call) in forwarder:
                continue
            argument = call.args[0] if call.args else None
            for keyword in call.keywords:
                if keyword.arg == "name":
                    argument = keyword.value
            names = _literal_names(argument) if argument is not None else None
            assert names is not None, (
                f"{where}: {called} with a name that is not a literal: "
                "no dashboard or alarm could be checked against it"
            )
            for name in names:
                yield Emission(name, where)


def emitted_by_entry(module: str, function: str | None) -> set[Emission]:
    reached, modules = reachable_from(module, function)
    found = set(emissions(module_path(module) or Path(), reached))
    for other in modules - {module}:
        path = module_path(other)
        assert path is not None
        found |= set(emissions(path, list(parsed(path).body)))
    return found


# ---------------------------------------------------------------------------------------------
# The Terraform: each unit's entry point, service name and namespace
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    name: str  # module call in terraform/
    entry_module: str
    entry_function: str | None  # None: the whole module runs (python -m)
    service: str
    namespace: str


@cache
def units() -> tuple[Unit, ...]:
    found = []
    for name, call in modules_with_source(LAMBDA_MODULE_SOURCE).items():
        (handler,) = ROOT_SCOPE.evaluate(call["image_command"])
        module, _, function = handler.rpartition(".")
        found.append(_unit(name, module, function))
    for name, call in modules_with_source(TASK_MODULE_SOURCE).items():
        command = ROOT_SCOPE.evaluate(call["command"])
        assert command[:2] == ["python", "-m"], command
        found.append(_unit(name, command[2], None))
    return tuple(found)


def _unit(name: str, module: str, function: str | None) -> Unit:
    environment = unit_environment(name)
    return Unit(
        name,
        module,
        function,
        service=ROOT_SCOPE.evaluate(environment["POWERTOOLS_SERVICE_NAME"]),
        namespace=ROOT_SCOPE.evaluate(environment["POWERTOOLS_METRICS_NAMESPACE"]),
    )


NAMESPACE = ROOT_SCOPE.evaluate(ROOT_SCOPE.lookup("local.metrics_namespace"))


@cache
def emitted() -> dict[Pair, set[str]]:
    """(metric, service) -> where in the code it is emitted."""
    pairs: dict[Pair, set[str]] = {}
    for unit in units():
        for emission in emitted_by_entry(unit.entry_module, unit.entry_function):
            pairs.setdefault((emission.name, unit.service), set()).add(emission.where)
    return pairs


# ---------------------------------------------------------------------------------------------
# The Terraform: what the dashboard and the alarms query
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    where: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]


def _custom_reference(text: str) -> bool:
    """Whether an expression can produce an application metric line."""
    return "local.metrics_namespace" in text or NAMESPACE in text


def _math_expression(line: Any) -> dict[str, Any] | None:
    """A metric math line ([{expression, id, label, ...}]): computed from the widget's other
    lines, it names no metric of its own."""
    if isinstance(line, list) and len(line) == 1 and isinstance(line[0], dict):
        assert "expression" in line[0] and "id" in line[0], f"not a math line: {line}"
        return line[0]
    return None


def dashboard_queries() -> Iterator[Query]:
    """Every application-metric line of every widget. Such lines must be literal lists
    ([namespace, metric, dimension, value, ..., {options}]) so that they can be read here;
    metric math lines ([{expression = ..., id = ...}]) are checked by their own test."""
    for n, widget in enumerate(locals_of(TERRAFORM)["dashboard_widgets"]):
        title = widget.get("properties", {}).get("title", f"widget {n}")
        lines = widget.get("properties", {}).get("metrics", [])
        if isinstance(lines, str):  # a for expression over AWS resources
            assert not _custom_reference(lines), (
                f"{title}: application metric lines must be written out, not computed: {lines}"
            )
            continue
        for line in lines:
            where = f"dashboard widget {title!r}"
            if _math_expression(line) is not None:
                continue
            if isinstance(line, str):
                raise AssertionError(
                    f"{where}: a line that is an expression ({line}); write the line out as "
                    '[namespace, metric, "service", local.service_names.<unit>, {options}]'
                )
            try:
                namespace = ROOT_SCOPE.evaluate(line[0])
            except Unresolved:
                namespace = line[0]
            if namespace != NAMESPACE:
                assert str(namespace).startswith(("AWS/", "ECS/")), f"{where}: {line}"
                continue
            values = [v for v in line if not isinstance(v, dict)]
            evaluated = [ROOT_SCOPE.evaluate(v) for v in values]
            assert len(evaluated) % 2 == 0, f"{where}: dimensions must come in pairs: {line}"
            yield Query(
                where,
                namespace,
                evaluated[1],
                tuple(zip(evaluated[2::2], evaluated[3::2], strict=True)),
            )


def alarm_instances(name: str, alarm: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """An alarm, or each alarm of a for_each over a literal map (each.key / each.value filled in
    with the map's entries as written)."""
    if "for_each" not in alarm:
        yield name, alarm
        return
    each = alarm["for_each"]
    if isinstance(each, str):
        each = ROOT_SCOPE.lookup(each.removeprefix("${").removesuffix("}"))
    assert isinstance(each, dict), f"alarm {name}: for_each over a map readable here"

    def fill(value: Any, key: str) -> Any:
        if isinstance(value, dict):
            return {k: fill(v, key) for k, v in value.items()}
        if isinstance(value, str):
            if value == "${each.value}":
                return each[key]
            return value.replace("${each.key}", key)
        return value

    for key in each:
        yield f"{name}[{key}]", {k: fill(v, key) for k, v in alarm.items() if k != "for_each"}


def alarm_queries(path: Path) -> Iterator[tuple[Query | None, str]]:
    """(query, namespace as written) of every metric alarm in one Terraform module; the query is
    None for AWS/* namespaces."""
    for (rtype, declared_name), declared in resources(path).items():
        if rtype != "aws_cloudwatch_metric_alarm":
            continue
        yield from _alarm_queries(path, declared_name, declared)


def _alarm_queries(
    path: Path, declared_name: str, declared: dict[str, Any]
) -> Iterator[tuple[Query | None, str]]:
    for name, alarm in alarm_instances(declared_name, declared):
        where = f"{path.relative_to(ROOT)}: alarm {name}"
        assert "metric_query" not in alarm, f"{where}: metric math is not checked here"
        written = str(alarm["namespace"])
        if written.startswith("AWS/"):
            yield None, written
            continue
        namespace = ROOT_SCOPE.evaluate(alarm["namespace"])
        dimensions = ROOT_SCOPE.evaluate(alarm.get("dimensions", {}))
        yield (
            Query(
                where,
                namespace,
                ROOT_SCOPE.evaluate(alarm["metric_name"]),
                tuple(sorted(dimensions.items())),
            ),
            written,
        )


def all_alarm_queries() -> list[Query]:
    found = []
    for path in [TERRAFORM, *sorted(p for p in MODULES.iterdir() if p.is_dir())]:
        for query, written in alarm_queries(path):
            if query is None:
                continue
            assert query.namespace == NAMESPACE, f"{query.where}: unknown namespace {written}"
            found.append(query)
    return found


def check(query: Query) -> None:
    dimensions = dict(query.dimensions)
    assert set(dimensions) == {"service"} and len(query.dimensions) == 1, (
        f"{query.where}: {query.metric} must be queried by exactly the service dimension "
        f"(the only one the code emits), not {query.dimensions}"
    )
    pair = (query.metric, dimensions["service"])
    if pair in emitted():
        return
    emitters = sorted(service for metric, service in emitted() if metric == query.metric)
    raise AssertionError(
        f"{query.where}: {query.metric} under service={dimensions['service']} never has data: "
        + (f"it is emitted by {emitters}" if emitters else "no code emits it")
    )


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_every_unit_emits_into_the_stack_namespace_under_its_own_service() -> None:
    found = units()
    assert {u.name for u in found} >= {
        *("webhook", "merger", "pump", "reconciler", "notifier", "job_events")
    }
    assert any(u.entry_function is None for u in found), "the Fargate merge task is missing"
    for unit in found:
        assert unit.namespace == NAMESPACE, unit
        assert unit.service.startswith("contract-"), unit


def test_the_code_emits_metrics_and_the_collector_finds_the_known_ones() -> None:
    """The collector itself: known emitters are found where they are (a collector that finds
    nothing would let every check below pass)."""
    services = {u.name: u.service for u in units()}
    pairs = set(emitted())
    assert ("SlotsInUse", services["reconciler"]) in pairs
    assert ("SlotsInUse", services["pump"]) not in pairs
    assert ("SpeechSubmits", services["pump"]) in pairs
    assert ("SpeechSubmits", services["reconciler"]) not in pairs
    assert ("SpeechJobsFailed", services["pump"]) in pairs
    assert ("JobEventsReceived", services["job_events"]) in pairs
    assert ("JobEventsReceived", services["pump"]) not in pairs
    assert ("MergeSeconds", services["merger_task"]) in pairs
    assert ("WebhookAccepted", services["webhook"]) in pairs
    assert ("WebhookDuplicate", services["webhook"]) in pairs  # a conditional of two literals


def test_a_name_that_is_not_a_literal_fails_the_collector() -> None:
    tree = ast.parse("def f(name):\n    record_metric(name)\n")
    with pytest.raises(AssertionError, match="not a literal"):
        list(emissions(SERVICES / "example.py", list(tree.body)))
    tree = ast.parse("def f():\n    metrics.add_dimension(name='x', value='y')\n")
    with pytest.raises(AssertionError, match="dimensions"):
        list(emissions(SERVICES / "example.py", list(tree.body)))


def test_every_alarm_on_an_application_metric_watches_an_emitted_metric_and_service() -> None:
    queries = all_alarm_queries()
    assert {q.metric for q in queries} >= {
        *("StuckMeetings", "SlotsInUse", "SpeechJobsFailed", "InsightsSectionsMissing")
    }
    for query in queries:
        check(query)


def test_every_dashboard_line_shows_an_emitted_metric_and_service() -> None:
    queries = list(dashboard_queries())
    assert queries
    for query in queries:
        check(query)


def test_every_emitted_metric_is_on_the_dashboard_under_its_service() -> None:
    shown = {(q.metric, dict(q.dimensions).get("service", "")) for q in dashboard_queries()}
    missing = {pair: sorted(where) for pair, where in emitted().items() if pair not in shown}
    assert not missing, "emitted but on no dashboard widget: " + "; ".join(
        f"{metric} (service={service}, {', '.join(where)})"
        for (metric, service), where in sorted(missing.items())
    )


def test_the_dashboard_body_is_the_widgets_checked_here() -> None:
    dashboard = resources(TERRAFORM)[("aws_cloudwatch_dashboard", "pipeline")]
    body: Any = dashboard["dashboard_body"]
    assert re.fullmatch(
        r"\$\{jsonencode\(\{\s*widgets\s*=\s*local\.dashboard_widgets\s*\}\)\}", body
    )


# The provider-neutral speech metrics, the model's and the job events', by the unit that emits
# them (what the code's emitters were asked to be): the dashboard shows each under its service,
# whatever the code emits at the moment (the tests above hold the two together).
SPEECH_METRICS: dict[str, set[str]] = {
    "SpeechSubmits": {"pump"},
    "SpeechLimitRefusals": {"pump"},
    "SpeechSubmitOutcomeUnknown": {"pump"},
    "SpeechAudioSeconds": {"pump"},
    "SpeechJobsFailed": {"webhook", "pump", "reconciler", "job_events"},
    "SpeechJobsTimedOut": {"reconciler"},
    "SpeechJobsNotDeleted": {"notifier"},
    "ModelInputTokens": {"notifier"},
    "ModelOutputTokens": {"notifier"},
    "ModelCalls": {"notifier"},
    "InsightsSectionsMissing": {"notifier"},
    "SpeakersUnconfirmed": {"notifier"},
    "SummariesMissing": {"notifier"},
    "JobEventsReceived": {"job_events"},
    "JobEventsIgnored": {"job_events"},
}


def test_the_dashboard_shows_every_speech_metric_under_its_emitter() -> None:
    services = {u.name: u.service for u in units()}
    shown = {(q.metric, dict(q.dimensions).get("service", "")) for q in dashboard_queries()}
    expected = {
        (metric, services[unit]) for metric, emitters in SPEECH_METRICS.items() for unit in emitters
    }
    assert not expected - shown, f"not on the dashboard: {sorted(expected - shown)}"
    renamed = {q.metric for q in dashboard_queries() if q.metric.startswith("Symbl")}
    assert not renamed, f"metrics renamed to Speech*: {sorted(renamed)}"


def _math_widgets() -> Iterator[tuple[str, list[Any], list[dict[str, Any]]]]:
    for widget in locals_of(TERRAFORM)["dashboard_widgets"]:
        lines = widget.get("properties", {}).get("metrics", [])
        if isinstance(lines, str):
            continue
        expressions = [e for e in map(_math_expression, lines) if e is not None]
        if expressions:
            yield widget["properties"]["title"], lines, expressions


def test_metric_math_uses_only_the_widget_s_own_lines() -> None:
    """An expression names other lines by id; an unknown id shows nothing (or an error)."""
    found = list(_math_widgets())
    assert found, "the cost-per-meeting widget is metric math"
    for title, lines, expressions in found:
        ids = {
            options["id"]
            for line in lines
            for options in line
            if isinstance(options, dict) and "id" in options
        }
        for expression in expressions:
            text = str(expression["expression"])
            if text.startswith("${local."):
                text = str(ROOT_SCOPE.lookup(text[2:-1]))
            words = set(re.findall(r"(?<![\w.${])([a-z][a-zA-Z0-9_]*)\b(?!\s*\()", text))
            words -= {"var", "local"}
            assert words, f"{title}: {text}"
            assert words <= ids - {expression["id"]}, f"{title}: unknown ids {words - ids}"


def test_cost_per_meeting_prices_audio_and_tokens_per_emailed_meeting() -> None:
    ((_title, lines, expressions),) = [
        w for w in _math_widgets() if w[0].lower().startswith("cost per meeting")
    ]
    by_id = {
        options["id"]: line
        for line in lines
        for options in line
        if isinstance(options, dict) and "id" in options
    }
    services = {u.name: u.service for u in units()}
    expected = {
        "audio": ("SpeechAudioSeconds", "pump"),
        "tokensin": ("ModelInputTokens", "notifier"),
        "tokensout": ("ModelOutputTokens", "notifier"),
        "emails": ("EmailsSent", "notifier"),
    }
    for line_id, (metric, unit) in expected.items():
        line = [ROOT_SCOPE.evaluate(v) for v in by_id[line_id] if not isinstance(v, dict)]
        assert line == [NAMESPACE, metric, "service", services[unit]], line_id
    spent = str(ROOT_SCOPE.lookup("local.cost_spent_expression"))
    assert "FILL(audio, 0) / 60 * ${var.transcribe_price_per_minute}" in spent
    assert "FILL(tokensin, 0) * ${var.bedrock_input_price_per_million_tokens} / 1000000" in spent
    assert "FILL(tokensout, 0) * ${var.bedrock_output_price_per_million_tokens} / 1000000" in spent
    per_meeting = {e["id"]: e["expression"] for e in expressions}
    assert per_meeting["permeeting"] == "IF(emails > 0, spent / emails)"
    variables = labelled(TERRAFORM, "variable")
    defaults = {
        "transcribe_price_per_minute": 0.024,
        "bedrock_input_price_per_million_tokens": 0.06,
        "bedrock_output_price_per_million_tokens": 0.24,
    }
    for name, default in defaults.items():
        assert variables[name]["default"] == default, name
        assert re.search(r"20\d\d-\d\d-\d\d", variables[name]["description"]), f"{name}: a date"
    assert "NOT confirmed" in variables["transcribe_price_per_minute"]["description"]
