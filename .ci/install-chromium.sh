#!/usr/bin/env bash
# Installs Debian's chromium for the playground's browser test
# (serve/playground: TestPlaygroundInChromium drives it over the DevTools
# protocol, headless). Without chromium that test skips, so a failed
# install (no package mirror reachable) only warns. Safe to run twice.
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then
	chromium --version 2>/dev/null || true
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
if $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium; then
	chromium --version 2>/dev/null || true
else
	echo "warning: could not install chromium; the playground's browser test will be skipped" >&2
fi
exit 0
