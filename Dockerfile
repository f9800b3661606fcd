# One image for the three services, the console and licensectl (used by docker-compose.yml).

# Swagger UI's and ReDoc's files for every service's /docs and /redoc, from the npm registry as scripts/lib.sh
# fetches them for a local run: no page of ours loads a CDN (shared/platform/docs_ui.py).
FROM node:22-slim AS docs-ui
WORKDIR /build
COPY scripts/lib.sh ./scripts/lib.sh
RUN bash -c 'source scripts/lib.sh && ensure_docs_assets'

FROM python:3.11-slim
WORKDIR /app
# pango and a font with Chinese glyphs: the console's PDF reports (weasyprint), in both languages.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-wqy-zenhei libpango-1.0-0 libpangoft2-1.0-0 \
    fontconfig && rm -rf /var/lib/apt/lists/*
COPY --from=docs-ui /build/tools/docs-ui/dist ./tools/docs-ui/dist
ENV LEDGER_DOCS_ASSETS=/app/tools/docs-ui/dist
COPY pyproject.toml constraints.txt ./
COPY shared ./shared
COPY services ./services
COPY licensectl ./licensectl
COPY samples ./samples
RUN pip install --no-cache-dir -c constraints.txt .
# Not root: a user of its own, who owns the directories the named volumes are mounted on (a new volume takes the
# owner of the directory it is mounted on), and nothing else.
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home ledger \
    && mkdir -p /run/ledger/keys /run/ledger/logins /run/ledger/demo \
    && chown -R ledger:ledger /run/ledger
USER ledger
# A service is healthy while /health/ready answers 200 (LEDGER_HEALTH_URL: its own, set per service; docker-compose.yml
# does). A container with no URL (a licensectl run) has nothing to probe and counts as healthy.
ENV LEDGER_HEALTH_URL=""
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; url = os.environ.get('LEDGER_HEALTH_URL'); url and urllib.request.urlopen(url, timeout=4)"]
