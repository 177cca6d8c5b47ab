#!/usr/bin/env bash
# Creates .venv with fleetcompat installed (editable); with --test, also what the
# test suite needs: Debian's openssh-server, chromium, busybox-static and
# docker-registry, installed with apt-get when missing, and the test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=no
[ "${1:-}" = "--test" ] && want_test=yes

need_apt=()
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
if [ "$want_test" = yes ]; then
  [ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
  command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
  command -v chromium >/dev/null || need_apt+=(chromium)
  [ -x /bin/busybox ] || need_apt+=(busybox-static)
  command -v docker-registry >/dev/null || need_apt+=(docker-registry)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: needs ${need_apt[*]} (run as root, or install them with apt-get)" >&2
    exit 2
  fi
  echo "setup: installing ${need_apt[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
log=.venv/pip-install.log
extra=""
[ "$want_test" = yes ] && extra="[test]"
echo "setup: installing fleetcompat$extra into .venv (log: $log)" >&2
if ! { .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip &&
       .venv/bin/python -m pip install --disable-pip-version-check -e ".$extra"; } \
     >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "setup: pip install failed; the whole log is in $log" >&2
  exit 2
fi
