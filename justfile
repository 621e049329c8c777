# Every task a developer or CI runs. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

export CARGO_TERM_COLOR := "never"

# The wasm-bindgen version pinned in Cargo.toml; the CLI must match it exactly.
wasm_bindgen_version := `sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' Cargo.toml`

# List the recipes.
default:
    @just --list

# Install what the project needs; skips whatever is already there.
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        rustup target add wasm32-unknown-unknown
    fi
    if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen {{wasm_bindgen_version}}" ]; then
        # --locked first for a reproducible tool; without it when the registry
        # lacks one of the locked versions.
        cargo install wasm-bindgen-cli --version "{{wasm_bindgen_version}}" --locked --force \
            || cargo install wasm-bindgen-cli --version "{{wasm_bindgen_version}}" --force
    fi
    while IFS= read -r lock; do
        dir="$(dirname "$lock")"
        if [ ! -d "$dir/node_modules" ] || [ "$lock" -nt "$dir/node_modules/.package-lock.json" ]; then
            (cd "$dir" && npm ci --no-audit --no-fund)
        fi
    done < <(find . -name package-lock.json -not -path '*/node_modules/*' -not -path './target/*')
    # System packages: Chromium for the browser tests, redis-server for the
    # Redis backend's tests (each starts its own on a free port).
    packages=()
    { command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || packages+=(chromium chromium-driver)
    command -v redis-server >/dev/null || packages+=(redis-server)
    if [ "${#packages[@]}" -gt 0 ]; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
        else
            echo "setup: install ${packages[*]} (Debian packages) as root" >&2
        fi
    fi

# Format check, lints, native tests (the server's again on Redis), wasm32 tests (Node and headless Chromium),
# the npm package tests, the Durable Streams conformance suite, the AI SDK
# client tests, and the web app's end-to-end tests in Chromium.
test: lint test-native test-redis test-wasm test-js test-conformance test-ai-sdk test-e2e

# Formatting and clippy with warnings as errors.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo clippy -p stream-core -p stream-wasm --target wasm32-unknown-unknown --all-targets -- -D warnings

# Every native test of the workspace.
test-native:
    cargo test --workspace

# The server's integration tests again with the session log on Redis (a
# redis-server of each test's own); the store's unit tests run on both already.
test-redis:
    STREAM_TEST_STORE=redis cargo test -p stream-server --test '*'

# stream-core's unit and property tests and the bindings' tests on wasm32:
# in Node, then in headless Chromium.
test-wasm:
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
        cargo test -p stream-core -p stream-wasm --target wasm32-unknown-unknown
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner WASM_BINDGEN_USE_BROWSER=1 \
        CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_WEBDRIVER_JSON="{{justfile_directory()}}/webdriver.json" \
        cargo test -p stream-core -p stream-wasm --target wasm32-unknown-unknown

# The npm package: builds it, type-checks the TypeScript, and runs the Node
# tests that import it by name (one of them against a real server).
test-js: wasm server-debug
    "crates/stream-wasm/js/node_modules/.bin/tsc" -p crates/stream-wasm/js --noEmit
    cd crates/stream-wasm/js && STREAM_SERVER_BIN="{{justfile_directory()}}/target/debug/stream-server" node --test test/

# The web app in headless Chromium (playwright-core, /usr/bin/chromium) against
# a real server; screenshots and the long-task figures land in target/e2e/.
test-e2e: web server-debug
    cd tests/e2e && STREAM_SERVER_BIN="{{justfile_directory()}}/target/debug/stream-server" node --test --test-concurrency=1 .

# The published Durable Streams conformance suite (pinned, in tests/conformance)
# against the debug server on a free port; it prints passed / run.
test-conformance: server-debug
    cd tests/conformance && STREAM_SERVER_BIN="{{justfile_directory()}}/target/debug/stream-server" node_modules/.bin/vitest run

# The AI SDK endpoints with the real `ai` client in Node, and a useChat page
# (tests/ai-sdk/page, built with esbuild) in headless Chromium.
test-ai-sdk: server-debug
    cd tests/ai-sdk && npm run build --silent && STREAM_SERVER_BIN="{{justfile_directory()}}/target/debug/stream-server" node --test --test-concurrency=1 chat.test.mjs chromium.test.mjs

# The server binary the JavaScript tests start.
server-debug:
    cargo build -p stream-server

# Builds the web app into web/dist (type-checked), on the package in pkg/.
web: wasm
    cd web && npm run build

# Runs the product: builds the package and the web app, then starts the server
# on its SQLite default (./data) with the demo provider; it prints where to open it.
demo: web
    cargo build --release -p stream-server
    ./target/release/stream-server --data-dir data --web-dir web/dist

# Runs two server nodes on one Redis (its own redis-server on a free port,
# data under data-cluster/), each serving the web app; prints both addresses.
demo-cluster: web
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release -p stream-server
    mkdir -p data-cluster/redis
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
    redis-server --bind 127.0.0.1 --port "$port" --dir data-cluster/redis --appendonly yes --save '' \
        --daemonize no --loglevel warning &
    until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
    for node in 1 2; do
        ./target/release/stream-server --bind "127.0.0.1:808$node" --data-dir "data-cluster/node$node" \
            --web-dir web/dist --redis-url "redis://127.0.0.1:$port/" &
    done
    sleep 1
    echo "two nodes on one Redis (port $port): http://127.0.0.1:8081 and http://127.0.0.1:8082; Ctrl-C stops them"
    wait

# Benchmarks; tables on stdout, JSON under target/bench/ (core.json, adapters.json, server.json, wasm.json, history.json).
bench:
    cargo bench -p stream-core --bench ingest
    cargo bench -p stream-core --bench adapters
    cargo build --release -p stream-server -p stream-bench
    ./target/release/loadgen --server target/release/stream-server
    just wasm
    node --expose-gc crates/stream-wasm/js/bench/trace.mjs
    node --expose-gc crates/stream-wasm/js/bench/history.mjs

# Soaks (long; not in CI): a million frames with retention on, the log must plateau.
soak:
    cargo test -p stream-server --test soak -- --ignored --nocapture --test-threads 1

# Builds the fuzz targets (needs cargo-fuzz for `just fuzz`, not for this).
fuzz-build:
    cargo build --manifest-path crates/stream-core/fuzz/Cargo.toml --target-dir target/fuzz
    cargo build --manifest-path crates/stream-server/fuzz/Cargo.toml --target-dir target/fuzz

# Fuzzes the engine for the given seconds (needs `cargo install cargo-fuzz`).
# Crashes land in crates/stream-core/fuzz/artifacts; commit them under fuzz/regressions.
fuzz seconds="60":
    cd crates/stream-core && RUSTC_BOOTSTRAP=1 cargo fuzz run engine_ops --sanitizer none \
        --target-dir ../../target/fuzz -- -max_total_time={{seconds}}

# Fuzzes the server's input parsing for the given seconds (needs `cargo install cargo-fuzz`).
# Crashes land in crates/stream-server/fuzz/artifacts; commit them under fuzz/regressions.
fuzz-server seconds="60":
    mkdir -p crates/stream-server/fuzz/corpus
    cd crates/stream-server && RUSTC_BOOTSTRAP=1 cargo fuzz run inputs --sanitizer none \
        --target-dir ../../target/fuzz fuzz/corpus fuzz/regressions -- -max_total_time={{seconds}}

# Builds the npm package into pkg/: release wasm, wasm-bindgen (web target,
# also loaded by the Node entry), wasm-opt from the binaryen npm package, tsc.
wasm:
    #!/usr/bin/env bash
    set -euo pipefail
    js=crates/stream-wasm/js
    cargo build --profile wasm-release --target wasm32-unknown-unknown -p stream-wasm
    rm -rf "$js/src/wasm" pkg/wasm pkg/*.js pkg/*.d.ts pkg/package.json
    wasm-bindgen --target web --out-dir "$js/src/wasm" target/wasm32-unknown-unknown/wasm-release/stream_wasm.wasm
    "$js/node_modules/.bin/wasm-opt" -Oz --converge --strip-debug --strip-producers --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
        --enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue \
        -o "$js/src/wasm/stream_wasm_bg.wasm" "$js/src/wasm/stream_wasm_bg.wasm"
    "$js/node_modules/.bin/tsc" -p "$js"
    mkdir -p pkg/wasm
    cp "$js"/src/wasm/* pkg/wasm/
    cp "$js/package.template.json" pkg/package.json
    # The package's users in this repository import it by name.
    for user in "$js" web; do
        mkdir -p "$user/node_modules"
        ln -sfn "$(realpath --relative-to="$user/node_modules" pkg)" "$user/node_modules/agent-stream"
    done
    gzipped="$(gzip -9 -c pkg/wasm/stream_wasm_bg.wasm | wc -c)"
    echo "pkg/wasm/stream_wasm_bg.wasm: $(wc -c < pkg/wasm/stream_wasm_bg.wasm) bytes, $gzipped gzipped"
    echo "target: .wasm <= 120 KB gzipped: $(awk "BEGIN { printf \"%.1f\", $gzipped / 1000 }") KB $([ "$gzipped" -le 120000 ] && echo met || echo 'NOT MET')"

# What CI runs: setup, then every test.
ci: setup test
