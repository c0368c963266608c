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
  line=$1
  shift
  echo "graft tests: $1 on Node $(PATH="$(node scripts/node-lines.mjs --bin "$line"):$PATH" node -v)" >&2
  shift
  PATH="$(node scripts/node-lines.mjs --bin "$line"):$PATH" node --import tsx --test --test-reporter=spec "$@"
}
for line in 22 24 26; do on "$line" "unit tests" test/unit/*.test.ts; done
node --import tsx -e "import('./bench/lib/built.ts').then((m) => m.builtPackage())"
on 24 "integration tests" --test-concurrency=2 test/integration/*.test.ts
across="reload live-config upgrade lifecycle faults websockets streams swap threads commonjs"
for line in 22 26; do
  files=""
  for name in $across; do files="$files test/integration/$name.test.ts"; done
  # shellcheck disable=SC2086
  on "$line" "integration tests ($across)" --test-concurrency=2 $files
done
