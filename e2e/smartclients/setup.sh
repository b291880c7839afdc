#!/usr/bin/env bash
# e2e/smartclients/setup.sh: installs the SMART client libraries that the
# end-to-end test runs (fhirclient, oauth4webapi) into node_modules/, exactly
# as package-lock.json pins them (npm ci). Without node_modules/ the Go test
# in this directory skips.
#
# It installs nothing optional (fhirclient's browser crypto shim would pull
# in React Native and Expo) and runs no install scripts. It does nothing when
# node_modules/ already matches package-lock.json, so running it twice is the
# same as running it once.
#
# Without Node/npm it says so and exits 0 (the test then skips), unless
# CI=true: there a missing npm is a failure.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
	echo "e2e/smartclients/setup.sh: node and npm not found; the SMART client end-to-end test will skip" >&2
	[[ ${CI:-} == true ]] && exit 1
	exit 0
fi

stamp=node_modules/.warden-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
	exit 0
fi
npm ci --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error
echo "$want" >"$stamp"
