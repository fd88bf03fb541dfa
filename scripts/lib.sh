# Shared by scripts/run-app and scripts/test-all: install what is missing, quietly, and nothing
# that is already there. Source it; do not run it.
# shellcheck shell=bash

OUTPOST_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export OUTPOST_ROOT

# Builds live outside the clone and are reused across runs; nothing requires the dir to exist.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outpost/target}"

# What the Tauri app needs to build and run on Debian 12.
APP_APT_PACKAGES=(
  build-essential pkg-config curl wget file
  libwebkit2gtk-4.1-dev libsoup-3.0-dev libssl-dev libxdo-dev
  libayatana-appindicator3-dev librsvg2-dev
)
# What the real-window tests add: a virtual X server and WebKit's WebDriver.
WINDOW_TEST_APT_PACKAGES=(xvfb xauth webkit2gtk-driver)
# What the server tests add: PostgreSQL, run as a throw-away cluster by scripts/pg-test-cluster.
SERVER_TEST_APT_PACKAGES=(postgresql)
# What scripts/check-deb adds: a virtual X server, xwininfo, desktop-file-validate.
DEB_CHECK_APT_PACKAGES=(xvfb xauth x11-utils desktop-file-utils)

# Vite 8 needs this; Debian 12's own nodejs (18) is too old.
NODE_MIN_MAJOR=20
NODE_MIN_MINOR=19

# A heading, with the seconds since the script started: a run's log says where its time went.
section() {
  printf '\n\033[1m==> %s\033[0m (at %d s)\n' "$*" "$SECONDS"
}

die() {
  printf '\033[31merror:\033[0m %s\n' "$*" >&2
  exit 1
}

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

# Installs the Debian packages that are not installed yet; does nothing (and prints nothing)
# when all are there. `apt-get update` runs only when something must be installed.
ensure_apt_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  echo "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

ensure_rust() {
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup) first"
}

ensure_rust_lint_tools() {
  cargo fmt --version >/dev/null 2>&1 || die "rustfmt missing: rustup component add rustfmt"
  cargo clippy --version >/dev/null 2>&1 || die "clippy missing: rustup component add clippy"
}

ensure_node() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
    die "node and npm not found: install Node.js >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR"
  local version major minor
  version="$(node --version)"
  version="${version#v}"
  major="${version%%.*}"
  minor="${version#*.}"
  minor="${minor%%.*}"
  if [ "$major" -lt "$NODE_MIN_MAJOR" ] ||
    { [ "$major" -eq "$NODE_MIN_MAJOR" ] && [ "$minor" -lt "$NODE_MIN_MINOR" ]; }; then
    die "Node.js $version is too old for the UI build: need >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR"
  fi
}

# `npm ci` in ui/ when node_modules is missing or older than the lockfile or package.json
# (npm writes node_modules/.package-lock.json on every install).
ensure_ui_deps() {
  local ui="$OUTPOST_ROOT/ui" stamp="$OUTPOST_ROOT/ui/node_modules/.package-lock.json"
  if [ ! -f "$stamp" ] || [ "$ui/package-lock.json" -nt "$stamp" ] || [ "$ui/package.json" -nt "$stamp" ]; then
    echo "installing UI dependencies (npm ci)"
    (cd "$ui" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

build_ui() {
  (cd "$OUTPOST_ROOT/ui" && npm run --silent build -- --logLevel warn)
}

# tauri-driver bridges WebDriver clients to the app; a crate, so cargo installs it.
ensure_tauri_driver() {
  if ! command -v tauri-driver >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
    echo "installing tauri-driver (cargo install, about a minute)"
    cargo install tauri-driver --locked --quiet
  fi
}
