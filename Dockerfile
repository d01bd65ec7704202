# rerank-proxy image. Build: docker build -t rerank-proxy .
# Run:   docker run -p 4000:4000 -v "$PWD/config.yaml:/app/config.yaml:ro" rerank-proxy
# Extras baked in (default PostgreSQL and Redis): docker build --build-arg EXTRAS=postgres,redis,otel,bedrock .
FROM python:3.11.11-slim-bookworm

ARG EXTRAS=postgres,redis
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in a layer of their own: it is rebuilt only when pyproject.toml changes.
# (An empty package stands in for the source so pip can resolve the project's dependencies.)
COPY pyproject.toml README.md ./
RUN mkdir -p proxy && touch proxy/__init__.py \
    && pip install --no-cache-dir "./[${EXTRAS}]" \
    && pip uninstall --yes rerank-proxy \
    && rm -rf proxy build ./*.egg-info

# Then the source: changing it rebuilds only these layers.
COPY proxy ./proxy
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf proxy build ./*.egg-info

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin proxy \
    && chown proxy:proxy /app
USER 10001:10001

EXPOSE 4000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:4000/health/liveliness', timeout=4); sys.exit(r.status != 200)"]

# The config is mounted as a file at /app/config.yaml; secrets come from the environment (os.environ/NAME).
ENTRYPOINT ["rerank-proxy"]
CMD ["--config", "/app/config.yaml", "--port", "4000"]
