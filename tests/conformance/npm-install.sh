#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# npm-install.sh DIR: installs the Node packages of the conformance suite and
# the API benchmark (tests/conformance/package.json: langsmith 0.12.0 and ws,
# pinned by package-lock.json) into DIR/node_modules. Cached: does nothing
# when DIR already holds exactly these versions. Needs node and npm (make deps).
set -eu

src=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: npm-install.sh DIR}
mkdir -p "$dir"

# version of an installed package, or "" when absent
installed() {
	node -e 'try { process.stdout.write(require(process.argv[1]).version) } catch (e) {}' \
		"$(cd "$dir" && pwd)/node_modules/$1/package.json"
}
# version the lock file pins
pinned() {
	node -e 'const l = require(process.argv[1]);
		process.stdout.write(l.packages["node_modules/" + process.argv[2]].version)' \
		"$src/package-lock.json" "$1"
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "npm-install: node and npm are needed (make deps installs them)" >&2
	exit 1
fi

ok=1
for p in langsmith ws; do
	[ "$(installed "$p")" = "$(pinned "$p")" ] || ok=0
done
if [ "$ok" = 1 ] && cmp -s "$src/package-lock.json" "$dir/package-lock.json"; then
	exit 0
fi

echo "npm-install: installing langsmith@$(pinned langsmith) and ws@$(pinned ws) into $dir" >&2
cp "$src/package.json" "$src/package-lock.json" "$dir/"
cd "$dir"
# npm ci: exactly what the lock file says; no audit or funding chatter.
npm ci --no-audit --no-fund --loglevel=error >&2
