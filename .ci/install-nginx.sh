#!/usr/bin/env bash
# Installs Debian's nginx (nginx-light: the core modules, upstream hash
# included) for the deploy/ balancer test (internal/cli: TestDeployNginx
# runs deploy/nginx/masque.conf in front of two masque serve replicas).
# Without nginx that test skips, so a failed install (no package mirror
# reachable) only warns. Safe to run twice.
set -uo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
	(nginx -v || /usr/sbin/nginx -v) 2>&1 || true
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
if $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends nginx-light; then
	/usr/sbin/nginx -v 2>&1 || true
else
	echo "warning: could not install nginx; the deploy/ balancer test will be skipped" >&2
fi
exit 0
