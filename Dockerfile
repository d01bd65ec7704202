# rerank-proxy image. Build: docker build -t rerank-proxy .
# Run:   docker run -p 4000:4000 -v "$PWD/config.yaml:/app/config.yaml:ro" -v rerank-data:/data rerank-proxy
# Extras baked in (default PostgreSQL and Redis): docker build --build-arg EXTRAS=postgres,redis,otel,bedrock .
# Another port: -e PORT=8080 (the health check follows it). The SQLite file and the spend spill file live in
# /data (the working directory, a volume): they survive a recreated container.
FROM python:3.11.11-slim-bookworm

ARG EXTRAS=postgres,redis
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PORT=4000

# Everything goes into one virtualenv, whichever Python the base has and wherever it lives.
RUN python3 -m venv /opt/venv

WORKDIR /app

# Dependencies first, in a layer of their own, at the versions constraints.txt pins: rebuilt only when
# pyproject.toml or the pins change. (An empty package and README stand in for the source so pip can resolve
# the project's dependencies.)
COPY pyproject.toml constraints.txt ./
RUN mkdir -p proxy && touch proxy/__init__.py README.md \
    && pip install --no-cache-dir --constraint constraints.txt "./[${EXTRAS}]" \
    && pip uninstall --yes rerank-proxy \
    && rm -rf proxy build ./*.egg-info README.md

# Then the source: changing it (or the README, the package's description) rebuilds only these layers.
COPY README.md ./
COPY proxy ./proxy
RUN pip install --no-cache-dir --no-deps --constraint constraints.txt . \
    && rm -rf proxy build ./*.egg-info

# Debian's base system already has a user called `proxy` (uid 13): ours is `rerank`.
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin rerank \
    && mkdir /data && chown rerank:rerank /data
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001

EXPOSE 4000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/health/liveliness' % os.environ.get('PORT', '4000'); sys.exit(urllib.request.urlopen(url, timeout=4).status != 200)"]

# The config is mounted as a file at /app/config.yaml; secrets come from the environment (os.environ/NAME);
# the port from PORT.
ENTRYPOINT ["rerank-proxy"]
CMD ["--config", "/app/config.yaml"]
