# Sourced by scripts/test and scripts/demo: installs what a fresh machine
# lacks. ZooKeeper comes from Debian's package; librdkafka is built from the
# copy vendored in the rdkafka crate, so it needs only a C toolchain.
# apt_install WHY PKG...: installs the Debian packages given, if any.
apt_install() {
  local why=$1
  shift
  [ $# -gt 0 ] || return 0
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "Installing $* (Debian packages$why)..." >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "$@" >&2
}

ensure_deps() {
  local pkgs=()
  [ -f /usr/share/java/zookeeper.jar ] || pkgs+=(zookeeper)
  command -v java >/dev/null 2>&1 || pkgs+=(default-jre-headless)
  command -v cc >/dev/null 2>&1 || pkgs+=(gcc)
  command -v make >/dev/null 2>&1 || pkgs+=(make)
  apt_install "" "${pkgs[@]}"
  if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null 2>&1; then
    echo "error: ZooKeeper (Debian package 'zookeeper') and a Java runtime are required and could not be installed" >&2
    return 1
  fi
  command -v cargo >/dev/null 2>&1 || { echo "error: cargo is required (install Rust with rustup)" >&2; return 1; }
}

# What `--all-features` builds against: the security features link the
# system's OpenSSL (kafka-ssl), Cyrus SASL (kafka-gssapi) and GSSAPI
# (zk-gssapi, whose bindings need libclang); kafka-ssl-vendored builds
# OpenSSL, which needs perl.
ensure_feature_deps() {
  local pkgs=()
  dpkg -s libssl-dev >/dev/null 2>&1 || pkgs+=(libssl-dev)
  dpkg -s libsasl2-dev >/dev/null 2>&1 || pkgs+=(libsasl2-dev)
  dpkg -s libkrb5-dev >/dev/null 2>&1 || pkgs+=(libkrb5-dev)
  command -v pkg-config >/dev/null 2>&1 || pkgs+=(pkg-config)
  ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || pkgs+=(libclang-dev)
  command -v perl >/dev/null 2>&1 || pkgs+=(perl)
  apt_install " (for the security features)" "${pkgs[@]}"
}

# Real third-party peers the tests run beside our members, under
# target/peers: kafka-node 3.0.1 (the last release with ZooKeeper groups),
# with Node.js from Debian when missing, and pykafka 2.8 in a virtualenv;
# and Debian's kcat, whose -J output zkbc's must equal.
ensure_peers() {
  ensure_kafka_node && ensure_pykafka && ensure_kcat
}

ensure_kcat() {
  command -v kcat >/dev/null 2>&1 && return 0
  apt_install " (kcat, to compare zkbc consume -J with)" kcat
  command -v kcat >/dev/null 2>&1 || { echo "error: kcat could not be installed" >&2; return 1; }
}

ensure_pykafka() {
  local venv=target/peers/py
  [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import pykafka' 2>/dev/null && return 0
  python3 -m venv --help >/dev/null 2>&1 || apt_install " (for pykafka)" python3 python3-venv
  echo "Installing pykafka 2.8.0 into $venv (PyPI)..." >&2
  rm -rf "$venv"
  # pykafka 2.8's setup needs setuptools < 81; it pins kazoo 2.5.0 itself.
  python3 -m venv "$venv" && "$venv/bin/pip" install -q 'setuptools<81' &&
    "$venv/bin/pip" install -q pykafka==2.8.0 >&2 || {
    echo "error: pykafka 2.8.0 could not be installed from PyPI" >&2
    return 1
  }
}

ensure_kafka_node() {
  local dir=target/peers
  [ -f "$dir/node_modules/kafka-node/package.json" ] && command -v node >/dev/null 2>&1 && return 0
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install " (for kafka-node)" nodejs npm
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
