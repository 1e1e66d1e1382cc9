# modelreg's model server image: `modelreg fetch` (the init container) and `modelreg serve` (the server),
# with the serve and s3 extras and the CPU build of torch. `make image` builds it under the name the
# default templates render: ghcr.io/modelreg/modelreg:<modelreg version>.
FROM python:3.11-slim

# Local wheel folders (this project's machines) or a torch index (GitHub: https://download.pytorch.org/whl/cpu)
ARG PIP_FIND_LINKS=""
ARG TORCH_INDEX_URL=""
ENV PIP_FIND_LINKS=$PIP_FIND_LINKS \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY src src
RUN pip install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==2.13.0" \
    && pip install --quiet -c constraints.txt ".[serve,s3,sign]" \
    && rm -rf /src \
    && groupadd --gid 10001 modelreg \
    && useradd --uid 10001 --gid 10001 --create-home modelreg

# the uid and gid the rendered pods run as (runAsUser/runAsGroup 10001): non-root, as the Pod Security
# Standard `restricted` requires; the root filesystem can be read-only (HOME and TMPDIR are /tmp there)
USER 10001:10001
WORKDIR /home/modelreg
EXPOSE 8080
CMD ["modelreg", "--help"]
