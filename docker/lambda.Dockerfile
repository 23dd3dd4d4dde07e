# syntax=docker/dockerfile:1.7
# Lambda image of one service, chosen by the SERVICE build argument. From the repository root:
#   docker build --provenance=false --platform linux/amd64 -f docker/lambda.Dockerfile \
#     --build-arg SERVICE=webhook -t <repo>:<tag> .
# (no provenance attestation: Lambda refuses the image index it turns the tag into; amd64: the
# functions are declared x86_64.)
# SERVICE is one of the pyproject.toml optional dependency groups: webhook | merger | submitter |
# notifier. The submitter image serves both the pump and the reconciler (Terraform sets
# image_config.command); only the merger image carries ffmpeg.
# Layers, most stable first: dependencies, (ffmpeg), services/core, the service's own code, CMD.

# AWS's Python 3.12 Lambda base image, pinned by digest: the digest of the 3.12 tag that
# nationalarchives/ds-caselaw-data-enrichment-service pinned (and built its Lambda images from) in
# pull request #1959, merged 2026-06-12. A tag's digest names its multi-platform image index;
# --platform linux/amd64 picks the x86_64 image from it.
# To move on: docker buildx imagetools inspect public.ecr.aws/lambda/python:3.12 (the Digest line).
ARG LAMBDA_BASE=public.ecr.aws/lambda/python:3.12@sha256:60d905e5b5329af7f2bd8289c5f989b91a33963e9908b29511b2d119721e67d0
# Static ffmpeg/ffprobe 7.1.1 (no shared libraries), pinned by digest.
ARG FFMPEG_IMAGE=mwader/static-ffmpeg:7.1.1@sha256:11a44711684c0b9f754c047dcd64235b8b52deab251bd0e0a86f22faa160749c
ARG SERVICE=webhook

FROM ${FFMPEG_IMAGE} AS ffmpeg

# The requirement lists: the shared dependencies plus the service's group of pyproject.toml, and
# the service's packages installed without their dependencies ([tool.insights.no-deps]; the
# merger's silero-vad, whose torch requirement it never imports; empty for the other services).
FROM ${LAMBDA_BASE} AS requirements
ARG SERVICE
WORKDIR /build
COPY pyproject.toml ./
RUN python3 -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies'][sys.argv[1]]))" "${SERVICE}" > requirements.txt \
    && python3 -c "import sys, tomllib; t = tomllib.load(open('pyproject.toml', 'rb'))['tool']['insights']['no-deps']; print('\n'.join(t.get(sys.argv[1], [])))" "${SERVICE}" > no-deps.txt

# Dependencies at the versions of constraints.txt, in a layer that is rebuilt only when the
# requirement list or the constraints change (never for a code change).
FROM ${LAMBDA_BASE} AS deps
WORKDIR /build
COPY --from=requirements /build/requirements.txt /build/no-deps.txt ./
COPY constraints.txt ./
RUN python3 -m pip install --no-cache-dir --disable-pip-version-check --target /opt/deps \
        -c constraints.txt -r requirements.txt \
    && python3 -m pip install --no-cache-dir --disable-pip-version-check --target /opt/deps \
        --no-deps -c constraints.txt -r no-deps.txt

FROM ${LAMBDA_BASE} AS runtime
COPY --from=deps /opt/deps ${LAMBDA_TASK_ROOT}/

# Per-service system tools; unused stages are never built.
FROM runtime AS tools-webhook
FROM runtime AS tools-submitter
FROM runtime AS tools-notifier
FROM runtime AS tools-merger
COPY --from=ffmpeg /ffmpeg /ffprobe /usr/local/bin/

# tools-<SERVICE> is a stage above, not an image (hadolint cannot see through the variable).
# hadolint ignore=DL3006
FROM tools-${SERVICE} AS code
ARG SERVICE
COPY services/__init__.py ${LAMBDA_TASK_ROOT}/services/
COPY services/core/ ${LAMBDA_TASK_ROOT}/services/core/
COPY services/${SERVICE}/ ${LAMBDA_TASK_ROOT}/services/${SERVICE}/

# The default handler of each image (module.function under LAMBDA_TASK_ROOT).
FROM code AS handler-webhook
CMD ["services.webhook.handler.lambda_handler"]

FROM code AS handler-merger
CMD ["services.merger.handler.lambda_handler"]

FROM code AS handler-submitter
CMD ["services.submitter.handler.pump_handler"]

FROM code AS handler-notifier
CMD ["services.notifier.handler.lambda_handler"]

# The image is the handler-<SERVICE> stage above.
# hadolint ignore=DL3006
FROM handler-${SERVICE}
