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

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

# Fixed uid/gid so volume ownership and host-side policies are predictable.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && install -d -o app -g app /app

# Bind-mount the wheels instead of COPYing them so they do not end up in a layer.
# --no-index: everything must come from the builder, nothing is fetched at this point.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/*.whl

WORKDIR /app
USER 10001:10001

EXPOSE 8000

# slim has no curl/wget; urlopen raises on connection errors and non-2xx, which exits 1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4).status == 200 else 1)"]

# Only the reverse proxy can reach this port (it is not published), so trusting
# X-Forwarded-* from any peer is safe and gives the app the real client address/scheme.
CMD ["uvicorn", "--factory", "http_api.app:create_app", \
     "--ws", "websockets-sansio", \
     "--host", "0.0.0.0", "--port", "8000", \
     "--proxy-headers", "--forwarded-allow-ips=*"]
