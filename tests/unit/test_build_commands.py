"""Every image build the project documents or runs makes an image Lambda and Fargate accept.

`docker build` with BuildKit attaches a provenance attestation unless told not to, and the pushed
tag then names an OCI image index, which Lambda's CreateFunction refuses; without `--platform`, an
ARM build machine builds arm64 images for functions and a task the Terraform declares x86_64. So
each `docker build` in the Makefile, in the deploy steps (terraform/README.md) and in the image
docs (docker/) carries `--provenance=false` and `--platform <the Terraform's architecture>`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2.utils import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
MAKEFILE = ROOT / "Makefile"
DEPLOY_README = TERRAFORM / "README.md"
DOCKER = ROOT / "docker"

# Lambda's `architectures` and ECS's `cpu_architecture` values -> the Docker platform.
LAMBDA_PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
TASK_PLATFORMS = {"X86_64": "linux/amd64", "ARM64": "linux/arm64"}

_OPTIONS = SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)
_DOCKER_BUILD = re.compile(r"\bdocker\s+(?:buildx\s+)?build\b")
# Where one shell command ends: a list operator, a pipe, or the end of a Markdown code span.
_COMMAND_END = re.compile(r"&&|\|\||;|\||`")


def _module_calls() -> list[dict[str, Any]]:
    calls = []
    for tf in sorted(TERRAFORM.glob("*.tf")):
        doc = hcl2.loads(tf.read_text(encoding="utf-8"), serialization_options=_OPTIONS)
        for block in doc.get("module", []):
            calls.extend(block.values())
    return calls


def _variable_default(module: str, name: str) -> Any:
    path = TERRAFORM / "modules" / module / "variables.tf"
    doc = hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=_OPTIONS)
    for block in doc["variable"]:
        if name in block:
            return block[name]["default"]
    raise AssertionError(f"modules/{module} declares no variable {name}")


def declared_platforms() -> dict[str, str]:
    """The Docker platform each function and the task must run on, from the Terraform."""
    platforms: dict[str, str] = {}
    for call in _module_calls():
        if call["source"] == "./modules/lambda_service":
            arch = call.get("architecture", _variable_default("lambda_service", "architecture"))
            platforms[str(call["function_name"])] = LAMBDA_PLATFORMS[arch]
        elif call["source"] == "./modules/fargate_task":
            arch = call.get(
                "cpu_architecture", _variable_default("fargate_task", "cpu_architecture")
            )
            platforms[str(call["family"])] = TASK_PLATFORMS[arch]
    return platforms


def logical_lines(text: str, continuation: str = "\\") -> list[str]:
    """Lines with shell/make continuations joined."""
    joined = re.sub(re.escape(continuation) + r"[ \t]*\n[ \t]*", " ", text)
    return joined.splitlines()


def docker_builds(text: str) -> list[str]:
    """Each `docker build ...` command in the text, up to where its shell command ends."""
    found = []
    for line in logical_lines(text):
        line = line.strip().lstrip("#").strip()
        for match in _DOCKER_BUILD.finditer(line):
            rest = line[match.start() :]
            end = _COMMAND_END.search(rest, match.end() - match.start())
            found.append(rest[: end.start()] if end else rest)
    return found


def flags(command: str) -> dict[str, str]:
    """The options of one command: `--name=value`, `--name value`, `-f value`."""
    words = [w.strip("'\"") for w in command.split()]
    options: dict[str, str] = {}
    for n, word in enumerate(words):
        if not word.startswith("-"):
            continue
        name, equals, value = word.partition("=")
        if not equals:
            following = words[n + 1] if n + 1 < len(words) else ""
            value = "" if following.startswith("-") else following
        options[name] = value
    return options


SOURCES = {
    "Makefile": MAKEFILE,
    "terraform/README.md": DEPLOY_README,
    "docker/README.md": DOCKER / "README.md",
    "docker/lambda.Dockerfile": DOCKER / "lambda.Dockerfile",
    "docker/task.Dockerfile": DOCKER / "task.Dockerfile",
}


def test_the_terraform_declares_one_platform_for_every_image() -> None:
    platforms = declared_platforms()
    assert len(platforms) == 7, platforms  # six functions (job-events too) and the merge task
    assert len(set(platforms.values())) == 1, f"images need different platforms: {platforms}"


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_docker_build_disables_provenance_and_sets_the_declared_platform(
    source: str,
) -> None:
    (platform,) = set(declared_platforms().values())
    commands = docker_builds(SOURCES[source].read_text(encoding="utf-8"))
    assert commands, f"{source}: no docker build found (the parser lost it?)"
    for command in commands:
        options = flags(command)
        assert options.get("--provenance") == "false", (
            f"{source}: `{command}` lacks --provenance=false: the pushed tag would be an image "
            "index with a provenance attestation, which Lambda refuses"
        )
        assert options.get("--platform") == platform, (
            f"{source}: `{command}` must build for {platform} (the Terraform's architecture), "
            f"not {options.get('--platform') or 'the build machine'}"
        )


def test_make_build_builds_every_image() -> None:
    """The Makefile's build target covers the four Lambda images and the task image."""
    text = MAKEFILE.read_text(encoding="utf-8")
    recipe = text[text.index("\nbuild:") : text.index("\n.PHONY", text.index("\nbuild:"))]
    commands = docker_builds(recipe)
    dockerfiles = sorted(flags(c).get("-f", "") for c in commands)
    assert dockerfiles == ["docker/lambda.Dockerfile", "docker/task.Dockerfile"], commands
    assert "for service in webhook merger submitter notifier" in recipe
