# syntax=docker/dockerfile:1
#
# Two images from one file:
#
#   docker build -t imagine-bot .                                  # the bot (the last stage)
#   docker build --target worker -t imagine-bot-worker .           # the GPU worker (CUDA)
#
# The bot image holds the base dependencies only (no torch, no extras). Configuration comes
# from the environment (IMAGINE_SECTION__KEY and the secrets, see deploy/imagine-bot.env.example);
# a config.toml may be mounted read-only at $IMAGINE_CONFIG. BuildKit builds only the stages
# the chosen target needs, so building the bot never pulls the CUDA base image.

ARG PYTHON_IMAGE=python:3.11-slim
# torch ships inside this image, built for its CUDA; installing the worker extra keeps it.
ARG TORCH_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

# ---------------------------------------------------------------------------------------------
# builder: one wheel of the project, and a venv holding it with the base dependencies.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Only what the wheel is made of: pyproject names README.md as the long description.
COPY pyproject.toml README.md ./
COPY bot ./bot
# --no-deps: the wheel of this project alone; its dependencies install into the venv below.
RUN python -m pip wheel --no-deps --wheel-dir /wheels .
# The venv lives at the path it will have in the runtime stage: venvs are not relocatable
# (the scripts' #! lines name the venv's python).
RUN python -m venv /opt/imagine-bot/.venv \
 && /opt/imagine-bot/.venv/bin/pip install /wheels/*.whl

# ---------------------------------------------------------------------------------------------
# worker: `imagine-bot worker` on a CUDA PyTorch base. Build with --target worker.
FROM ${TORCH_IMAGE} AS worker
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Model downloads (hub ids) and compiler caches land in the volume below, so a restart does not
# fetch or compile them again (the user has no home folder).
ENV HF_HOME=/models XDG_CACHE_HOME=/models/.cache
# No config.toml is needed; one mounted read-only here is read when present.
ENV IMAGINE_CONFIG=/etc/imagine-bot/config.toml
COPY --from=builder /wheels /wheels
# The constraint pins torch to the build that came with the image: the worker extra asks for
# torch>=2.4, and without the pin a resolver could swap in a CPU or other-CUDA wheel (GBs).
# The version is read from pip's own metadata (what the resolver compares), without importing torch.
RUN python -c "import importlib.metadata as m; print('torch==' + m.version('torch'))" > /tmp/torch.txt \
 && pip install --constraint /tmp/torch.txt "$(ls /wheels/*.whl)[worker]" \
 && rm -rf /wheels /tmp/torch.txt
# A fixed uid (not root) that volume owners and Kubernetes' runAsNonRoot can check.
RUN groupadd --system --gid 10001 imagine-bot \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin imagine-bot \
 && mkdir -p /models /work \
 && chown 10001:10001 /models
# Created and owned before VOLUME: a fresh named volume copies this owner, so uid 10001 can write.
VOLUME /models
# An empty working folder the user cannot write to: no stray ./config.toml is picked up.
WORKDIR /work
USER 10001:10001
EXPOSE 8188
# Listening beyond loopback: the worker refuses to start without IMAGINE_WORKER_API_KEY (or
# --insecure-no-key), so the key is part of the health probe as well. Loading a model can take
# minutes, hence the long start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15m --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:8188/health', headers={'x-api-key': os.environ.get('IMAGINE_WORKER_API_KEY', '')}), timeout=4)"]
# uvicorn finishes the requests in flight on SIGTERM.
STOPSIGNAL SIGTERM
# Exec form: the worker is PID 1 and receives the stop signal itself (no shell in between).
ENTRYPOINT ["imagine-bot"]
# Models come from [worker] models (IMAGINE_WORKER__MODELS='{"flux-schnell": ""}') or from
# --model options given after the image name.
CMD ["worker", "--host", "0.0.0.0"]

# ---------------------------------------------------------------------------------------------
# bot: the default target (last in the file).
FROM ${PYTHON_IMAGE} AS bot
# Logs reach `docker logs` at once; the read-only venv gets no .pyc files written beside it.
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
ENV PATH=/opt/imagine-bot/.venv/bin:$PATH
# The database and the images: the volume below.
ENV IMAGINE_STORAGE__PATH=/data
# GET /healthz and /metrics must answer outside the container's loopback (the published port);
# the bot's own default host is 127.0.0.1.
ENV IMAGINE_METRICS__HOST=0.0.0.0
# No config.toml is needed; one mounted read-only here is read when present.
ENV IMAGINE_CONFIG=/etc/imagine-bot/config.toml
RUN groupadd --system --gid 10001 imagine-bot \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin imagine-bot \
 && mkdir -p /data /work \
 && chown 10001:10001 /data
COPY --from=builder /opt/imagine-bot/.venv /opt/imagine-bot/.venv
# Created and owned before VOLUME: a fresh named volume copies this owner, so uid 10001 can write.
VOLUME /data
# An empty working folder the user cannot write to: no stray ./config.toml is picked up, and
# nothing lands outside /data.
WORKDIR /work
USER 10001:10001
EXPOSE 9464
# python-slim has no curl; urllib exits non-zero on a refused connection or a non-2xx answer.
# The port follows IMAGINE_METRICS__PORT when that is set.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('IMAGINE_METRICS__PORT', '9464'), timeout=4)"]
# The bot drains on SIGTERM for [dispatch] drain_s (20 s) and exits within drain_s + 5 s;
# `docker stop` waits 10 s by default, so give it --time 30 (compose sets stop_grace_period).
STOPSIGNAL SIGTERM
# Exec form: imagine-bot is PID 1 and receives SIGTERM itself (a shell would swallow it).
ENTRYPOINT ["imagine-bot"]
CMD ["run"]
