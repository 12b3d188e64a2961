# syntax=docker/dockerfile:1
# A Python-style app: non-root user early, dependencies before the source, source last.
ARG PYTHON_IMAGE=busybox:latest
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="example app" \
      org.opencontainers.image.version=1.0
ENV PYTHONUNBUFFERED=1 \
    APP_HOME=/srv/app
RUN addgroup -g 1000 app && adduser -D -u 1000 -G app app
WORKDIR $APP_HOME
COPY requirements.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install -r requirements.txt
COPY --chown=app:app src/ ./src/
USER app
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD ["wget", "-q", "-O-", "http://localhost:8000/health"]
STOPSIGNAL SIGINT
ENTRYPOINT ["python", "-m", "src.app"]
CMD ["--port", "8000"]
