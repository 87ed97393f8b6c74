# Sourced by scripts/test and scripts/demo: installs what a fresh machine
# lacks. ZooKeeper comes from Debian's package; librdkafka is built from the
# copy vendored in the rdkafka crate, so it needs only a C toolchain.
ensure_deps() {
  local pkgs=()
  [ -f /usr/share/java/zookeeper.jar ] || pkgs+=(zookeeper)
  command -v java >/dev/null 2>&1 || pkgs+=(default-jre-headless)
  command -v cc >/dev/null 2>&1 || pkgs+=(gcc)
  command -v make >/dev/null 2>&1 || pkgs+=(make)
  if [ ${#pkgs[@]} -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "Installing ${pkgs[*]} (Debian packages)..." >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${pkgs[@]}" >&2
  fi
  if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null 2>&1; then
    echo "error: ZooKeeper (Debian package 'zookeeper') and a Java runtime are required and could not be installed" >&2
    return 1
  fi
  command -v cargo >/dev/null 2>&1 || { echo "error: cargo is required (install Rust with rustup)" >&2; return 1; }
}

# Real third-party peers the tests run beside our members: kafka-node 3.0.1
# (the last release with ZooKeeper groups) under target/peers, with Node.js
# from Debian when missing.
ensure_peers() {
  local dir=target/peers
  [ -f "$dir/node_modules/kafka-node/package.json" ] && command -v node >/dev/null 2>&1 && return 0
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "Installing nodejs npm (Debian packages)..." >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends nodejs npm >&2
  fi
  mkdir -p "$dir"
  echo "Installing kafka-node 3.0.1 into $dir (npm)..." >&2
  npm install --prefix "$dir" --no-audit --no-fund --omit=optional kafka-node@3.0.1 >&2 || {
    echo "error: kafka-node 3.0.1 could not be installed from npm" >&2
    return 1
  }
}

# Processes of ours (marked zkbalance.testkit.owner=<pid>) whose owner is gone.
# Prints "pid owner" lines; kills them when $1 is "kill".
leftover_processes() {
  local f pid owner
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    owner=$(tr '\0' '\n' < "$f" 2>/dev/null | sed -n 's/.*zkbalance\.testkit\.owner=\([0-9]*\).*/\1/p' | head -n1)
    [ -n "$owner" ] || continue
    [ -d "/proc/$owner" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$owner/stat" 2>/dev/null && continue
    echo "$pid $owner"
    [ "${1:-}" = kill ] && kill -9 "$pid" 2>/dev/null
  done
  return 0
}
