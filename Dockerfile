# The swarm's image: the `swarm` CLI (workers, beat, Flower, metrics), installed with the pinned
# versions of constraints.txt. docker-compose.yml runs every swarm service from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A regular (non-editable) install; the sources are not left on the path.
COPY . /src
RUN pip install -c /src/constraints.txt /src \
    && rm -rf /src

# The workflows and the beat schedule ship inside the package; a file mounted at
# /app/config/workflows.toml or /app/config/beat.toml overrides them (relative paths resolve here).
WORKDIR /app

RUN useradd --create-home --uid 10001 --user-group swarm \
    && chown -R swarm:swarm /app
USER swarm

ENTRYPOINT ["swarm"]
CMD ["--help"]
