# omniflow: one image for the API (the default command), the worker (`python -m worker`)
# and migrations (`omniflow migrate`). Configured only through environment variables:
# DATABASE_URL, TEMPORAL_ADDRESS and OMNIFLOW_* (runtime/settings.py). See docker-compose.yml.
#
#   docker build -t omniflow .

# ---- build: install omniflow and its dependencies into a virtualenv --------------------
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/omniflow
WORKDIR /src

# Dependencies first, in their own layer: code changes do not reinstall them.
# (README.md* : the package's readme, copied when it exists.)
COPY pyproject.toml README.md* ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write('\n'.join(deps))" \
 && /opt/omniflow/bin/pip install -r /tmp/requirements.txt

COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY models ./models
COPY domain ./domain
COPY runtime ./runtime
COPY cli ./cli
COPY client ./client
COPY migrations ./migrations
COPY worker.py ./
# No dev extras. Migrations (alembic.ini, versions/) are package data of the wheel.
RUN /opt/omniflow/bin/pip install .

# ---- runtime ----------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm

ENV PATH=/opt/omniflow/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMNIFLOW_API_HOST=0.0.0.0 \
    OMNIFLOW_API_PORT=8000 \
    OMNIFLOW_LOG_FORMAT=json

RUN groupadd --system --gid 10001 omniflow \
 && useradd --system --uid 10001 --gid omniflow --home-dir /app --shell /usr/sbin/nologin omniflow \
 && install -d -o omniflow -g omniflow /app

COPY --from=build /opt/omniflow /opt/omniflow

WORKDIR /app
# Numeric, so orchestrators can verify runAsNonRoot.
USER 10001:10001

EXPOSE 8000

# Liveness of the API (slim has no curl). Compose disables it for the worker and migrate.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('OMNIFLOW_API_PORT', '8000') + '/healthz', timeout=3)"]

CMD ["python", "-m", "api"]
