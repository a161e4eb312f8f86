# The Switchboard image used by docker-compose.yml for ingest and the workers (and the
# provider simulator, `simulate`, for a staging setup). It holds no accounts or rules: mount
# yours and point SWITCHBOARD_ACCOUNTS_FILE (and SWITCHBOARD_RULES_FILE) at them.
FROM python:3.11-slim
# tini is PID 1 and passes signals on to switchboard: as PID 1 itself, switchboard would be deaf
# to every signal it has no handler for yet (the kernel drops them), so a SIGTERM while a
# worker starts (reaching Kafka, reading the opt-out list) would be lost and the worker run on
# until SIGKILL, and `tail` or `send` would ignore `docker stop`. It also reaps orphans.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
# The dependencies first, in a layer of their own: with no sources copied yet, setuptools finds
# no packages and this installs only what pyproject.toml depends on. A change to the code then
# rebuilds from the COPYs below in seconds, instead of downloading every dependency again.
RUN pip install --no-cache-dir --constraint constraints.txt .
COPY switchboard ./switchboard
COPY ingest ./ingest
COPY normalizers ./normalizers
COPY consumers ./consumers
COPY simulator ./simulator
RUN pip install --no-cache-dir --no-deps --constraint constraints.txt . \
    && groupadd --gid 10001 switchboard \
    && useradd --uid 10001 --gid switchboard --no-create-home --shell /usr/sbin/nologin switchboard
# By number: Kubernetes' runAsNonRoot can verify only a numeric user (a name it refuses to run).
USER 10001:10001
# Every interface of the container: the default, 127.0.0.1, is reached by nothing outside it
# (a published port, another container, the kubelet's probes): `docker run -p 8080:8080 IMAGE
# serve` was out of the host's reach. A value given to the container still wins.
ENV SWITCHBOARD_HTTP_HOST=0.0.0.0
ENTRYPOINT ["/usr/bin/tini", "--", "switchboard"]
