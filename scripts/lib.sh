# shellcheck shell=bash
# Helpers shared by the scripts under scripts/ (sourced, not run):
#
#   . "$(dirname "$0")/lib.sh"
#   SCRIPT=name    (set before sourcing: the prefix of error messages)
#
# say          a progress line on stderr
# die          an error on stderr, exit 1
# as_root      run a command as root (directly, or with sudo)
# apt_install  install Debian packages, saying so
# free_port    a free TCP port on loopback
# wait_for_line FILE PATTERN PID WHAT   wait (60 s) for a line in a log

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '%s: %s\n' "${SCRIPT:-beaker}" "$*" >&2; exit 1; }

# Runs a command as root: directly, or through sudo when available.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else return 1
    fi
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "cannot install $*: no apt-get here; install it yourself"
    say "installing $* with apt"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        || die "cannot run apt-get (need root or sudo) to install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null \
        || shuf -i 20000-60000 -n 1
}

# Waits until `pattern` appears in `file`, while `pid` lives; at most 60 s.
wait_for_line() { # file pattern pid what
    for _ in $(seq 1 600); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || die "$4 exited before it was ready; see $1"
        sleep 0.1
    done
    die "$4 was not ready within 60 s; see $1"
}
