# The model-exporter sidecar. The same image runs the demo model server and traffic
# generator of docker-compose.yml (`python -m exporter.demo.…`): they ship in the package.
#
#   docker build -t model-exporter:0.1.0 .
#   docker run --rm -p 8000:8000 -p 9110:9110 model-exporter:0.1.0 run --upstream http://model:8080

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
# Wheels for the package and its dependencies; the runtime stage installs them offline.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels model-exporter \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin exporter
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001
# 8000: the proxy port (client traffic); 9110: the metrics/admin port.
EXPOSE 8000 9110
ENTRYPOINT ["model-exporter"]
CMD ["--help"]
