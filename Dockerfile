# syntax=docker/dockerfile:1
# The application image: Python, Prefect and the flows, plus deploy.ts compiled to one binary at
# /usr/local/bin/deploy, which fly.toml's release_command runs before new machines start.

ARG DENO_VERSION=2.9.6
ARG PYTHON_VERSION=3.11

# ── Build: install from the lock, type-check, compile (denort is downloaded here) ──
FROM denoland/deno:debian-${DENO_VERSION} AS build
WORKDIR /src
COPY deno.json deno.lock ./
COPY deploy.ts ./
COPY lib/ lib/
COPY schema/ schema/
COPY tools/compile.ts tools/compile.ts
RUN deno install --frozen --entrypoint deploy.ts \
 && deno check deploy.ts \
 && deno task compile \
 && ./dist/deploy --version

# ── Application: glibc (Debian) like the build stage, non-root ──
FROM python:${PYTHON_VERSION}-slim-bookworm AS app
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PREFECT_CLI_PROMPT=false \
    DO_NOT_TRACK=1
# The pinned release the tests run against, every package pinned (tests/prefect_server.ts).
COPY tests/prefect-pins/3.8.8.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt \
 && useradd --create-home --uid 10001 app
WORKDIR /app
COPY flows/ flows/
COPY prefect/ prefect/
COPY --from=build /src/dist/deploy /usr/local/bin/deploy
USER app
# The release command (fly.toml) registers prefect/ from /app, so pull steps point here and
# the worker below runs the flows from the same directory.
CMD ["prefect", "worker", "start", "--pool", "local-process", "--type", "process"]
