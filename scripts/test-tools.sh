#!/bin/sh
# The integration tests start their own etcd and HAProxy on loopback ports, and
# drive the live status page in headless Chromium; on a fresh machine they come
# from Debian's packages. Nothing is started here.
set -e
missing=""
command -v etcd >/dev/null 2>&1 || missing="$missing etcd-server"
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing="$missing haproxy"
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "graft tests: install$missing (apt-get install -y$missing) and run again" >&2
  exit 1
fi
echo "graft tests: installing$missing from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq $missing >/dev/null
