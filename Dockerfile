# Aegis Memory server image: the API with the PostgreSQL driver and the bundled local
# embedding model. Build from the repository root:
#
#     docker build -t aegis-memory:0.1.0 .
#
# See docs/deployment/docker.md.

# ---------------------------------------------------------------------------- build stage
# Every dependency ships binary wheels (the vector index's faiss-cpu included); the compiler
# stays in the build stage only for a platform where some package has none. Everything is
# installed into a virtual environment that the runtime stage copies as a whole.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install '.[server,postgres]'

# The local embedding model (all-MiniLM-L6-v2, int8 ONNX, about 23 MB) is part of the package:
# the install above put it inside the virtual environment, so the image never downloads a model,
# not here and not at run time. Embedding one text proves it is there and loads, offline.
RUN python -c "from aegis_memory.embeddings.local import LocalOnnxEmbedder; \
assert LocalOnnxEmbedder().embed(['baked in']).shape == (1, 384)"

# -------------------------------------------------------------------------- runtime stage
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    AEGIS_DATA_DIR=/data

# A fixed numeric uid/gid so that Kubernetes can check runAsNonRoot (k8s/deployment.yaml
# uses the same numbers). /data is owned by that user so a named volume mounted there starts
# out writable.
RUN groupadd --system --gid 10001 aegis \
    && useradd --system --uid 10001 --gid aegis --create-home --home-dir /home/aegis \
       --shell /usr/sbin/nologin aegis \
    && mkdir -p /data \
    && chown aegis:aegis /data

COPY --from=build /opt/venv /opt/venv

WORKDIR /home/aegis
USER 10001:10001

EXPOSE 8000

# Exec form with no shell; the port comes from PORT like the server's own.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=4)"]

CMD ["aegis", "serve"]
