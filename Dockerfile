# One image for the online server and the batch runner.
#   docker build -t scorer .
#   docker run -p 8000:8000 scorer                      # serves the demo endpoint
#   docker run -v $PWD/data:/data scorer scorer batch configs/batch/demo-batch.yaml --input /data --output /data/out
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=1 \
    RAY_USAGE_STATS_ENABLED=0

RUN useradd --create-home --uid 10001 scorer
WORKDIR /app

# Dependencies first (pinned by the committed lock file), so code changes reuse this layer.
COPY pyproject.toml constraints.txt README.md ./
COPY scorer ./scorer
COPY serving ./serving
COPY batch ./batch
RUN pip install -c constraints.txt . && chown scorer /app

COPY --chown=scorer configs ./configs
COPY --chown=scorer examples ./examples
USER scorer

# The image serves on its own: the demo models are trained into /app/.scorer at build time.
RUN python examples/training/train.py

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/ping', timeout=2).status == 200 else 1)"]
CMD ["scorer", "serve", "configs/endpoints/demo.yaml", "--host", "0.0.0.0"]
