#!/usr/bin/env bash
# The main job for a newcomer: watch a cluster fail over, step by step.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --bin eterne-sim
./target/release/eterne-sim --demo
