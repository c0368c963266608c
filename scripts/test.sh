#!/bin/sh
# npm test: the whole suite on the Node lines graft supports (scripts/node-lines.mjs
# installs each from the npm registry into .cache/node, once). The unit tests run on
# every line; the integration tests all run on Node 24, and the ones that lean on
# what changes between Node lines (node:cluster and its handles, http and http2
# drains, module loading for swaps, worker threads, a CommonJS project, the
# keeper's sockets) run on 22 and 26 too.
set -e
cd "$(dirname "$0")/.."
sh scripts/test-tools.sh
node scripts/node-lines.mjs >/dev/null
npm run typecheck --silent
on() {
  # Its own line, so that set -e stops the run when the line cannot be installed or runs another version.
  bin=$(node scripts/node-lines.mjs --bin "$1")
  echo "graft tests: $2 on Node $("$bin/node" -v)" >&2
  shift 2
  PATH="$bin:$PATH" node --import tsx --test --test-reporter=spec "$@"
}
for line in 22 24 26; do on "$line" "unit tests" test/unit/*.test.ts; done
node --import tsx -e "import('./bench/lib/built.ts').then((m) => m.builtPackage())"
on 24 "integration tests" --test-concurrency=2 test/integration/*.test.ts
across="reload live-config upgrade lifecycle faults websockets streams swap threads commonjs"
for line in 22 26; do
  files=""
  for name in $across; do
    # node --test passes over a file that does not exist: a renamed one must not drop out unseen.
    [ -f "test/integration/$name.test.ts" ] || { echo "graft tests: test/integration/$name.test.ts is gone; update scripts/test.sh" >&2; exit 1; }
    files="$files test/integration/$name.test.ts"
  done
  # shellcheck disable=SC2086
  on "$line" "integration tests ($across)" --test-concurrency=2 $files
done
