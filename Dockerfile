# The Revenge server: `docker build -t revenge:0.1.0 .`
#
# Runs as an unprivileged user and writes only to /data (the data directory)
# and /tmp, so it works with a read-only root filesystem
# (`docker run --read-only --tmpfs /tmp -v revenge-data:/data ...`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid/gid the Helm chart's securityContext (runAsUser 10001) matches.
RUN groupadd --system --gid 10001 revenge \
 && useradd --system --uid 10001 --gid revenge --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin revenge

WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY revenge ./revenge
COPY twisted ./twisted
# A regular (not editable) install into site-packages, dropin included. Then
# rebuild Twisted's plugin cache as root: at run time site-packages is not
# writable and twistd would otherwise rescan (and fail to cache) on every start.
RUN pip install . \
 && python -c 'from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))' \
 && twistd --help | grep -q ' revenge ' \
 && rm -rf /src

RUN mkdir -p /data /media && chown revenge:revenge /data
WORKDIR /data
ENV REVENGE_DATA_DIR=/data
VOLUME ["/data"]

USER 10001:10001
EXPOSE 8096 7000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8096/healthz', timeout=4)"]

STOPSIGNAL SIGTERM
# --pidfile= (empty): no twistd.pid in the working directory. Arguments given
# to `docker run IMAGE ...` go to the revenge subcommand (--config, --listen,
# --log-format).
ENTRYPOINT ["twistd", "--nodaemon", "--pidfile=", "revenge"]
CMD []
