# syntax=docker/dockerfile:1

# ---- builder: compile the project and every dependency into wheels --------
FROM python:3.13-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A compiler is only needed for dependencies without a prebuilt wheel; it stays
# in this stage and never reaches the runtime image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

RUN pip wheel --wheel-dir /wheels -c constraints.txt .

# ---- runtime ---------------------------------------------------------------
FROM python:3.13-slim AS runtime

# The same settings as everywhere (core/settings.py); compose adds the rest. DATA_DIR holds
# the mail outbox (without SendPulse) and the backups: mount a volume there.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/data

# Fixed uid/gid so volume ownership and host-side policies are predictable. /data exists in
# the image owned by the app user, so a new named volume mounted there is writable.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && install -d -o app -g app /app /data

# Bind-mount the wheels instead of COPYing them so they do not end up in a layer.
# --no-index: everything must come from the builder, nothing is fetched at this point.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/*.whl

WORKDIR /app
USER 10001:10001

EXPOSE 8000

# slim has no curl/wget; urlopen raises on connection errors and non-2xx, which exits 1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/health/live\", timeout=4).status == 200 else 1)"]

# The same entry point as `make run`: it applies HOST/PORT, WS_PING_INTERVAL_SEC,
# WS_MAX_FRAME_BYTES, FORWARDED_ALLOW_IPS and GRACEFUL_SHUTDOWN_SEC, and runs the production
# checks before anything listens. Exec form: SIGTERM reaches the app, which hands its sockets
# over (close 1012) and finishes open requests within GRACEFUL_SHUTDOWN_SEC.
CMD ["python", "-m", "core.cli", "run"]
