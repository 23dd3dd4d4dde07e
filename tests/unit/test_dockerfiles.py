"""The images against the code: each Dockerfile's command names code that exists, and the Lambda
image's SERVICE values are the pyproject.toml dependency groups of the services."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
LAMBDA_DOCKERFILE = DOCKER / "lambda.Dockerfile"
TASK_DOCKERFILE = DOCKER / "task.Dockerfile"
# Optional dependency groups that are not services (no image of their own).
NON_SERVICE_GROUPS = {"sandbox", "dev"}


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


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


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


@pytest.mark.parametrize("dockerfile", [LAMBDA_DOCKERFILE, TASK_DOCKERFILE], ids=lambda p: p.name)
def test_base_images_are_pinned(dockerfile: Path) -> None:
    images = {
        i.arguments.partition("=")[2]
        for i in instructions(dockerfile)
        if i.keyword == "ARG" and re.match(r"\w+_(BASE|IMAGE)=", i.arguments)
    }
    assert images
    for image in images:
        name = image.split("@")[0]
        tag = name.rpartition(":")[2] if ":" in name.rpartition("/")[2] else ""
        pinned_tag = bool(tag) and tag != "latest" and re.search(r"\d+\.\d+", tag)
        assert pinned_tag or "@sha256:" in image, f"{image} is not pinned"


def test_task_image_runs_as_non_root() -> None:
    users = [i.arguments for i in instructions(TASK_DOCKERFILE) if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


@pytest.mark.parametrize("service", sorted(service_groups()))
def test_lambda_cmd_names_an_importable_handler(service: str) -> None:
    (handler,) = commands(LAMBDA_DOCKERFILE)[f"handler-{service}"]
    module_name, _, function = handler.rpartition(".")
    assert module_name.startswith(f"services.{service}."), handler
    if not module_exists(module_name):
        pytest.skip(f"{module_name} does not exist yet (the {service} image's handler)")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, function, None)), f"{handler} is not a function"


def test_task_cmd_names_an_importable_module() -> None:
    (command,) = commands(TASK_DOCKERFILE).values()
    assert command[:2] == ["python", "-m"], command
    if not module_exists(command[2]):
        pytest.skip(f"{command[2]} does not exist yet (the merge task's entry point)")
    importlib.import_module(command[2])


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
