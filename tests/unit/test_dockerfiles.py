"""The images against the code: each Dockerfile's command names code that exists, the Lambda
image's SERVICE values are the pyproject.toml dependency groups of the services, and the merger's
images install every package its code imports (silero-vad without torch)."""

from __future__ import annotations

import ast
import importlib
import json
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
LAMBDA_DOCKERFILE = DOCKER / "lambda.Dockerfile"
TASK_DOCKERFILE = DOCKER / "task.Dockerfile"
# Optional dependency groups that are not services (no image of their own).
NON_SERVICE_GROUPS = {"sandbox", "dev", "vad"}  # vad: only the benchmarks install it


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    stage: str  # name of the stage it belongs to ("" when unnamed)


def instructions(dockerfile: Path) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    found: list[Instruction] = []
    stage = ""
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.search(r"\s+AS\s+(\S+)\s*$", arguments, re.IGNORECASE)
            stage = match.group(1) if match else ""
        found.append(Instruction(keyword, arguments.strip(), stage))
    return found


def exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), (
        f"{instruction.keyword} must be in exec form (a JSON array): {instruction.arguments}"
    )
    return value


def commands(dockerfile: Path) -> dict[str, list[str]]:
    """CMD (or ENTRYPOINT) per stage, exec form."""
    return {
        i.stage: exec_form(i)
        for i in instructions(dockerfile)
        if i.keyword in ("CMD", "ENTRYPOINT")
    }


def service_groups() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(pyproject["project"]["optional-dependencies"]) - NON_SERVICE_GROUPS


def stages_named(prefix: str) -> set[str]:
    return {
        i.stage.removeprefix(prefix)
        for i in instructions(LAMBDA_DOCKERFILE)
        if i.keyword == "FROM" and i.stage.startswith(prefix)
    }


def test_service_values_are_the_dependency_groups_of_the_services() -> None:
    groups = service_groups()
    assert stages_named("handler-") == groups
    assert stages_named("tools-") == groups
    (default,) = (
        i.arguments.partition("=")[2]
        for i in instructions(LAMBDA_DOCKERFILE)
        if i.keyword == "ARG" and i.arguments.startswith("SERVICE=")
    )
    assert default in groups


def test_lambda_image_layers_dependencies_before_code() -> None:
    steps = instructions(LAMBDA_DOCKERFILE)
    install = next(n for n, i in enumerate(steps) if "pip install" in i.arguments)
    code = [n for n, i in enumerate(steps) if i.keyword == "COPY" and "services/" in i.arguments]
    assert code and min(code) > install
    core = next(n for n in code if "services/core" in steps[n].arguments)
    own = next(n for n in code if "services/${SERVICE}" in steps[n].arguments)
    assert core < own, "shared code first, the service's own code last"
    assert all(n > own for n, i in enumerate(steps) if i.keyword == "CMD")


def test_only_the_merger_images_carry_ffmpeg() -> None:
    ffmpeg_copies = {
        i.stage
        for i in instructions(LAMBDA_DOCKERFILE)
        if i.keyword == "COPY" and "--from=ffmpeg" in i.arguments
    }
    assert ffmpeg_copies == {"tools-merger"}
    assert any(
        i.keyword == "COPY" and "--from=ffmpeg" in i.arguments
        for i in instructions(TASK_DOCKERFILE)
    )


DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def arg_defaults(dockerfile: Path) -> dict[str, str]:
    """Build arguments with a default value (`ARG NAME=value`), by name."""
    found = {}
    for i in instructions(dockerfile):
        if i.keyword == "ARG" and "=" in i.arguments:
            name, _, value = i.arguments.partition("=")
            found[name.strip()] = value.strip().strip('"')
    return found


def base_images(dockerfile: Path) -> set[str]:
    """Every image a FROM pulls from a registry, `${ARG}` expanded; stages built earlier in the
    same file (`FROM deps`, `FROM tools-${SERVICE}`) are not images."""
    steps = instructions(dockerfile)
    stages = {i.stage for i in steps if i.keyword == "FROM" and i.stage}
    defaults = arg_defaults(dockerfile)
    images = set()
    for i in steps:
        if i.keyword != "FROM":
            continue
        words = [w for w in i.arguments.split() if not w.startswith("--platform")]
        reference = words[0]
        if re.fullmatch(r"[\w.-]*\$\{SERVICE\}", reference):
            continue  # a stage chosen by the build argument (tools-${SERVICE}, handler-${SERVICE})
        expanded = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m[1], m[0]), reference)
        if expanded in stages:
            continue
        images.add(expanded)
    return images


@pytest.mark.parametrize("dockerfile", [LAMBDA_DOCKERFILE, TASK_DOCKERFILE], ids=lambda p: p.name)
def test_base_images_are_pinned_by_digest(dockerfile: Path) -> None:
    """A tag can be moved to other bytes; a digest cannot. Every image a FROM names (directly or
    through an ARG default) carries @sha256:<64 hex>, and every ARG that names an image too."""
    images = base_images(dockerfile)
    assert images, f"{dockerfile.name}: no base image found"
    image_args = {
        name: value
        for name, value in arg_defaults(dockerfile).items()
        if re.fullmatch(r"\w+_(BASE|IMAGE)", name)
    }
    unpinned = sorted(image for image in images if not DIGEST.search(image))
    assert not unpinned, f"{dockerfile.name}: not pinned by digest: {unpinned}"
    unused = sorted(set(image_args) - {n for n, v in image_args.items() if v in images})
    assert not unused, f"{dockerfile.name}: image ARGs no FROM uses: {unused}"


def test_task_image_runs_as_non_root() -> None:
    users = [i.arguments for i in instructions(TASK_DOCKERFILE) if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


@pytest.mark.parametrize("service", sorted(service_groups()))
def test_lambda_cmd_names_an_importable_handler(service: str) -> None:
    (handler,) = commands(LAMBDA_DOCKERFILE)[f"handler-{service}"]
    module_name, _, function = handler.rpartition(".")
    assert module_name.startswith(f"services.{service}."), handler
    module = importlib.import_module(module_name)  # a missing module fails here
    assert callable(getattr(module, function, None)), f"{handler} is not a function"


def test_task_cmd_names_an_importable_module() -> None:
    (command,) = commands(TASK_DOCKERFILE).values()
    assert command[:2] == ["python", "-m"], command
    importlib.import_module(command[2])  # a missing module fails here


SERVICES = ROOT / "services"


def imported_service_packages(package: str) -> set[str]:
    """The other packages under services/ that `package`'s code needs, transitively (from its
    import statements; services/core/ included)."""
    needed: set[str] = set()
    pending = [package, "core"]
    while pending:
        current = pending.pop()
        for source in (SERVICES / current).rglob("*.py"):
            tree = ast.parse(source.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                for name in names:
                    parts = name.split(".")
                    if (
                        len(parts) > 1
                        and parts[0] == "services"
                        and parts[1] not in {package, "core", *needed}
                    ):
                        needed.add(parts[1])
                        pending.append(parts[1])
    return needed


def copied_packages(dockerfile: Path, stages: set[str]) -> set[str]:
    found = set()
    for i in instructions(dockerfile):
        if i.keyword == "COPY" and i.stage in stages:
            found.update(re.findall(r"\bservices/([\w${}]+)/", i.arguments))
    return found


@pytest.mark.parametrize("service", sorted(service_groups()))
def test_lambda_image_carries_every_service_package_its_code_imports(service: str) -> None:
    # The shared `code` stage copies core and the image's own package; a handler stage adds more.
    copied = copied_packages(LAMBDA_DOCKERFILE, {"code", f"handler-{service}"})
    copied = {service if p == "${SERVICE}" else p for p in copied}
    missing = imported_service_packages(service) - copied
    assert not missing, f"the {service} image lacks services/{sorted(missing)} its code imports"


def test_task_image_carries_every_service_package_the_merger_imports() -> None:
    copied = copied_packages(TASK_DOCKERFILE, {i.stage for i in instructions(TASK_DOCKERFILE)})
    missing = imported_service_packages("merger") - copied
    assert not missing, f"the merge task image lacks services/{sorted(missing)}"


# --- what the merger images install -----------------------------------------------------------


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def no_deps(group: str) -> list[str]:
    """The group's packages installed with `pip install --no-deps` ([tool.insights.no-deps])."""
    return list(pyproject()["tool"]["insights"]["no-deps"].get(group, []))


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_closure(requirements: list[str]) -> set[str]:
    """The distributions these requirements install, their dependencies included (from the
    installed metadata; optional extras left out)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    found: set[str] = set()
    pending = [Requirement(r).name for r in requirements]
    while pending:
        name = canonical(pending.pop())
        if name in found:
            continue
        found.add(name)
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return found


def third_party_imports(package: str) -> set[str]:
    """Top-level modules outside the standard library and services/ that a package's code and
    services/core import, at run time (imports under `if TYPE_CHECKING:` left out)."""
    modules: set[str] = set()
    for folder in (SERVICES / package, SERVICES / "core"):
        for source in folder.rglob("*.py"):
            tree = ast.parse(source.read_text(encoding="utf-8"))
            typing_only = {
                id(child)
                for node in ast.walk(tree)
                if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                for child in ast.walk(node)
            }
            for node in ast.walk(tree):
                if id(node) in typing_only:
                    continue
                if isinstance(node, ast.Import):
                    modules.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m != "services"} - {
        "__future__"
    }


def test_the_merger_images_install_every_package_the_merger_imports() -> None:
    """numpy and onnxruntime (speech detection) belong to the merger group; silero-vad's model
    comes without its dependencies, so torch is never installed."""
    from importlib import metadata

    project = pyproject()["project"]
    direct = project["dependencies"] + project["optional-dependencies"]["merger"]
    provided = installed_closure(direct) | {canonical(n) for n in no_deps("merger")}
    owners = metadata.packages_distributions()
    missing = sorted(
        module
        for module in third_party_imports("merger")
        if not {canonical(d) for d in owners.get(module, [module])} & provided
    )
    assert not missing, f"the merger imports {missing}, which its images do not install"
    assert "torch" not in provided


@pytest.mark.parametrize("dockerfile", [LAMBDA_DOCKERFILE, TASK_DOCKERFILE], ids=lambda p: p.name)
def test_images_install_the_no_deps_packages_without_their_dependencies(dockerfile: Path) -> None:
    runs = [i.arguments for i in instructions(dockerfile) if i.keyword == "RUN"]
    # the list is written from pyproject's table, and installed with --no-deps at pinned versions
    assert any("['no-deps']" in r and "> no-deps.txt" in r for r in runs)
    installs = [
        command
        for r in runs
        for command in r.split("&&")
        if "pip install" in command and "no-deps.txt" in command
    ]
    assert len(installs) == 1, installs
    assert "--no-deps" in installs[0].split() and "-c constraints.txt" in installs[0]


def test_setup_installs_the_no_deps_packages_at_their_pinned_versions() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    pins = {
        canonical(line.split("==")[0])
        for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line
    }
    for name in no_deps("merger"):
        assert canonical(name) in pins, f"{name} has no version in constraints.txt"
        assert re.search(
            rf"pip install .*--no-deps -c constraints\.txt .*\b{re.escape(name)}\b", makefile
        ), f"make setup does not install {name} with --no-deps"
