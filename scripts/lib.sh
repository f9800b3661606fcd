# Shared by scripts/up, scripts/down and scripts/test: the virtual environment and the infrastructure.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LEDGER_VENV:-$ROOT/.venv}"
RUN_DIR="$ROOT/.run"
UV_VERSION="0.13.9"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*"; }

# Create or refresh .venv when pyproject.toml or constraints.txt changed since the last install.
ensure_venv() {
  local want stamp="$VENV/.installed"
  want="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -d' ' -f1)"
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  local python="${PYTHON:-python3}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    log "Python 3.11 or newer is needed (found $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11"
    return 1
  fi
  log "installing the Python environment into $VENV"
  [ -x "$VENV/bin/python" ] || "$python" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" -c "$ROOT/constraints.txt" -e "$ROOT[dev]"
  echo "$want" > "$stamp"
}

# The AsyncAPI initiative's parser (Node.js), with which the tests validate the contract's documents:
# installed from tools/asyncapi/package-lock.json when it changed; Node.js and npm from Debian if missing.
ensure_node_tools() {
  local dir="$ROOT/tools/asyncapi" want stamp
  stamp="$dir/node_modules/.installed"
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "installing Node.js and npm from Debian's packages"
    apt-get install -y -qq nodejs npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
  fi
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  log "installing the AsyncAPI parser into tools/asyncapi/node_modules"
  npm ci --prefix "$dir" --no-audit --no-fund --silent
  echo "$want" > "$stamp"
}

# Swagger UI and ReDoc for every service's /docs and /redoc (shared/platform/docs_ui.py), from the npm registry's
# packages (npm checks their integrity), unpacked into tools/docs-ui/dist: the pages need no CDN.
SWAGGER_UI_VERSION="5.35.0" REDOC_VERSION="2.5.4"
ensure_docs_assets() {
  local dist="$ROOT/tools/docs-ui/dist" want="swagger-ui-dist@$SWAGGER_UI_VERSION redoc@$REDOC_VERSION no-cdn-logo" tmp
  [ "$(cat "$dist/.installed" 2>/dev/null)" = "$want" ] && return 0
  command -v npm >/dev/null || ensure_node_tools
  log "fetching Swagger UI $SWAGGER_UI_VERSION and ReDoc $REDOC_VERSION into tools/docs-ui/dist"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "swagger-ui-dist@$SWAGGER_UI_VERSION" "redoc@$REDOC_VERSION" >/dev/null)
  mkdir -p "$dist"
  tar -xzf "$tmp/swagger-ui-dist-$SWAGGER_UI_VERSION.tgz" -C "$tmp" package/swagger-ui-bundle.js \
    package/swagger-ui.css package/favicon-32x32.png package/LICENSE
  cp "$tmp/package/swagger-ui-bundle.js" "$tmp/package/swagger-ui.css" "$tmp/package/favicon-32x32.png" "$dist/"
  cp "$tmp/package/LICENSE" "$dist/LICENSE.swagger-ui"
  rm -rf "$tmp/package"
  tar -xzf "$tmp/redoc-$REDOC_VERSION.tgz" -C "$tmp" package/bundles/redoc.standalone.js package/LICENSE
  # ReDoc's footer loads Redocly's logo from their CDN; an image that fails is hidden (its onError), so "data:,"
  # keeps the page whole without a request leaving the machine.
  sed 's#"https://cdn.redoc.ly/redoc/logo-mini.svg"#"data:,"#' "$tmp/package/bundles/redoc.standalone.js" \
    > "$dist/redoc.standalone.js"
  cp "$tmp/package/LICENSE" "$dist/LICENSE.redoc"
  rm -rf "$tmp"
  echo "$want" > "$dist/.installed"
}

# Debian's chromium, which the console's browser tests drive through Playwright (never `playwright install`: no
# browser build is downloaded), and a font with Chinese glyphs for the console's PDF reports (weasyprint, pango).
ensure_chromium() {
  command -v chromium >/dev/null && fc-list : family 2>/dev/null | grep -i "WenQuanYi Zen Hei" >/dev/null && return 0
  log "installing chromium and the WenQuanYi Zen Hei font from Debian's packages"
  local packages=(chromium fonts-wqy-zenhei libpango-1.0-0 libpangoft2-1.0-0 fontconfig)
  apt-get install -y -qq "${packages[@]}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${packages[@]}" >/dev/null; }
}

# Chinese glyphs and pango for the console's PDF reports (weasyprint): what scripts/up needs without the browser.
ensure_report_fonts() {
  fc-list : family 2>/dev/null | grep -i "WenQuanYi Zen Hei" >/dev/null && return 0
  log "installing the WenQuanYi Zen Hei font and pango from Debian's packages (the console's PDF reports)"
  local packages=(fonts-wqy-zenhei libpango-1.0-0 libpangoft2-1.0-0 fontconfig)
  apt-get install -y -qq "${packages[@]}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${packages[@]}" >/dev/null; }
}

# promtool (Debian's prometheus package), with which the tests check the alerting rules and their unit tests.
ensure_promtool() {
  command -v promtool >/dev/null && return 0
  log "installing promtool (Debian's prometheus package)"
  apt-get install -y -qq prometheus >/dev/null || { apt-get update -qq && apt-get install -y -qq prometheus >/dev/null; }
}

# Start Kafka and PostgreSQL with the project's scripts, unless the environment points at existing ones.
# The local broker takes SASL/SCRAM logins only: this shell gets its admin's (KAFKA_USERNAME, KAFKA_PASSWORD).
ensure_infra() {
  if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    "$ROOT/deploy/local/kafka.sh" start
    export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:${KAFKA_PORT:-9092}"
    eval "$("$ROOT/deploy/local/kafka.sh" credentials)"
  else
    log "using the Kafka cluster at KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS"
  fi
  if [ -z "${DATABASE_URL:-}" ]; then
    "$ROOT/deploy/local/postgres.sh" start
    export DATABASE_URL="postgresql://ledger:ledger@127.0.0.1:${PGPORT_LEDGER:-54329}/ledger"
  else
    log "using the database at DATABASE_URL"
  fi
}
