#!/usr/bin/env bash
# The whole test suite, from a clean clone: set-up, build, every test tier that runs here.
# Tests that need root or network namespaces skip with one line saying why when not root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --all-targets
# Lints are part of the suite: among them, the transport and raft wire decoders may not
# unwrap, expect or panic outside tests (a peer's bytes must never panic the daemon).
if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --all-targets -- -D warnings
else
    echo "clippy is not installed: lints (no unwrap/expect/panic in src/transport) not checked"
fi
# Example configs must pass `eternectl config check` (also covered by tests/config_check.rs,
# this is the same check as a user runs it).
for f in config/*.toml; do ./target/debug/eternectl config check "$f"; done
cargo test --all-targets -- --test-threads=2
# `--all-targets` leaves out doctests; the docs' examples (driving a NodeCore) must compile
# and run too.
cargo test --doc
