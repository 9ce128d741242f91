# syntax=docker/dockerfile:1
#
# One image for every CBS process: the edge, each worker and the one-shot migration.
# compose.yaml (and the Kubernetes manifests) pick the process with the command,
# e.g. `cbs edge`, `cbs worker account`, `cbs migrate`.
#
#   docker build -t cbs:dev .
#   docker run --rm cbs:dev cbs --help

# Pinned to a patch release and a Debian release (tests/unit/test_compose.py): a rebuild gets the same
# Python and the same system libraries; move it on deliberately.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# --- build: install the project and its dependencies into a self-contained venv ---------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"

WORKDIR /src
# Every top-level package of pyproject's [tool.setuptools.packages.find]; the SQL
# migrations (bus/sql, workers/<name>/migrations) ship as package data.
COPY pyproject.toml ./
COPY bus/ bus/
COPY contracts/ contracts/
COPY workers/ workers/
COPY api_edge/ api_edge/
COPY ops/ ops/
RUN pip install . \
    && cd / && cbs --help > /dev/null

# --- runtime: the venv only, run as an unprivileged user ----------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CBS_EDGE_HOST=0.0.0.0 \
    CBS_EDGE_PORT=8080

# A Unicode font for statements as PDF (api_edge/statement_doc.py reads it at CBS_PDF_FONT's default);
# PostgreSQL's client programs for `cbs backup` / `cbs restore` (bookworm's are 15, the servers' major:
# pg_dump must be as new as the server it dumps).
RUN apt-get update -qq \
    && apt-get install -y --no-install-recommends fonts-dejavu-core postgresql-client-15 \
    && rm -rf /var/lib/apt/lists/*

# The audit archive's and the broker secrets' mount points (compose.yaml): a named volume mounted
# there starts owned by cbs (and the secrets folder readable by cbs alone).
RUN groupadd --system --gid 10001 cbs \
    && useradd --system --uid 10001 --gid cbs --home-dir /home/cbs --create-home \
       --shell /usr/sbin/nologin cbs \
    && mkdir -p /var/lib/cbs/audit-archive /var/lib/cbs/secrets && chown -R cbs:cbs /var/lib/cbs \
    && chmod 700 /var/lib/cbs/secrets

COPY --from=build /opt/venv /opt/venv

WORKDIR /home/cbs
USER cbs:cbs

EXPOSE 8080

# Each compose service / Deployment sets its own command; this default only lists them.
# No HEALTHCHECK here: one image runs every process, and each is checked where its command is set
# (compose.yaml: the edge's /health/live, a worker's metrics port; Kubernetes: the probes).
CMD ["cbs", "--help"]
