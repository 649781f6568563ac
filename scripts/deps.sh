#!/bin/sh
# Install what Fusion needs to build, run and test: Debian 12 packages
# (when running as root; otherwise print the exact command) and the npm
# packages pinned by package-lock.json.  Cheap when all is present.
set -eu
cd "$(dirname "$0")/.."

PKGS="build-essential pkg-config git
libevent-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev sqlite3
libpq-dev libhiredis-dev libsodium-dev libxlsxwriter-dev libzip-dev libexpat1-dev liblz4-dev libmimalloc-dev
libcriterion-dev chromium nodejs npm nginx wrk clang-tidy cppcheck clang-format"

missing=""
for p in $PKGS; do
	# Node may come from elsewhere than Debian (a newer release); accept that.
	case "$p" in
	nodejs | npm) command -v "${p%js}" >/dev/null 2>&1 && continue ;;
	esac
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "deps: installing Debian packages:$missing"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		# shellcheck disable=SC2086
		apt-get install -y -qq --no-install-recommends $missing
	else
		echo "deps: missing Debian packages. Run as root:"
		echo "  apt-get update && apt-get install -y --no-install-recommends$missing"
		exit 1
	fi
fi

# npm packages: reinstall only when the lock file changed.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	npm ci --no-audit --no-fund
	touch node_modules/.package-lock.json
fi
