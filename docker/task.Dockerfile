# syntax=docker/dockerfile:1.7
# Fargate task image for long merges. From the repository root:
#   docker build --provenance=false --platform linux/amd64 -f docker/task.Dockerfile -t <repo>:<tag> .
# (the task definition declares X86_64; one image manifest, no attestation index, as for Lambda.)
# Runs `python -m services.merger.task` as a non-root user on a read-only root filesystem; the
# task definition mounts its scratch volume on /tmp.

ARG PYTHON_BASE=python:3.12.12-slim-bookworm@sha256:593bd06efe90efa80dc4eee3948be7c0fde4134606dd40d8dd8dbcade98e669c
# Static ffmpeg/ffprobe 7.1.1 (no shared libraries), the same build as the merger Lambda image.
ARG FFMPEG_IMAGE=mwader/static-ffmpeg:7.1.1@sha256:11a44711684c0b9f754c047dcd64235b8b52deab251bd0e0a86f22faa160749c

FROM ${FFMPEG_IMAGE} AS ffmpeg

# The requirement lists: the shared dependencies plus the merger group of pyproject.toml, and the
# merger's packages installed without their dependencies ([tool.insights.no-deps]: silero-vad,
# whose torch requirement the merger never imports).
FROM ${PYTHON_BASE} AS requirements
WORKDIR /build
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['merger']))" > requirements.txt \
    && python -c "import tomllib; t = tomllib.load(open('pyproject.toml', 'rb'))['tool']['insights']['no-deps']; print('\n'.join(t.get('merger', [])))" > no-deps.txt

# Dependencies at the versions of constraints.txt in a virtualenv, rebuilt only when the
# requirement list or the constraints change.
FROM ${PYTHON_BASE} AS deps
WORKDIR /build
COPY --from=requirements /build/requirements.txt /build/no-deps.txt ./
COPY constraints.txt ./
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
        -c constraints.txt -r requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps \
        -c constraints.txt -r no-deps.txt

FROM ${PYTHON_BASE}
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 merger \
    && useradd --system --uid 10001 --gid merger --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin merger
COPY --from=ffmpeg /ffmpeg /ffprobe /usr/local/bin/
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
COPY services/__init__.py services/
COPY services/core/ services/core/
COPY services/merger/ services/merger/
USER 10001:10001
# Scratch space: the task definition mounts a volume on the task's ephemeral storage here.
VOLUME ["/tmp"]
CMD ["python", "-m", "services.merger.task"]
