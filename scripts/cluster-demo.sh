#!/usr/bin/env bash
# The main job: a real three-node EterneCluster on this machine's loopback, one group (a demo
# application), and a failover you can watch. Three eterned processes talk QUIC with mutual TLS
# on 127.0.91.x (path "lan") and 127.0.92.x (path "backplane"); certificates are made on the
# fly; everything lives in a temporary directory that is removed at the end.
#
#   bash scripts/cluster-demo.sh          # the scripted tour, then it cleans up
#   bash scripts/cluster-demo.sh --keep   # the tour, then leave the cluster running for you
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false
[ "${1:-}" = "--keep" ] && keep=true

bash scripts/setup.sh
cargo build --release --bin eterned --bin eternectl
bin=$PWD/target/release
dir=$(mktemp -d /tmp/eterne-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
  # The demo application runs in a session of its own (it survives a daemon restart by
  # design): stop the copies this demo started, found by their pidfiles.
  for f in "$dir"/n*/run/*.pid; do
    [ -f "$f" ] && kill -KILL "$(cut -d' ' -f1 "$f")" 2>/dev/null || true
  done
  rm -rf "$dir"
}
$keep || trap cleanup EXIT
[ -n "${DEMO_DEBUG:-}" ] && trap - EXIT

cat > "$dir/cluster.toml" <<TOML
# A three-node demo cluster on loopback. Same file on every node.
[cluster]
name = "demo"

[monitor]
quick_interval_ms = 1000
quick_timeout_ms = 500
start_timeout_ms = 5000
stop_timeout_ms = 3000

[[path]]
name = "lan"
kind = "network"
interval_ms = 50
misses = 4

[[path]]
name = "backplane"
kind = "network"
interval_ms = 50
misses = 4

[[node]]
name = "n1"
addresses = { lan = "127.0.91.1:7400", backplane = "127.0.92.1:7400" }
# On a real node a stop that fails even hard reboots the machine (the default); on the
# machine you try the demo on, the daemon exits instead.
on_stop_failure = "exit"

[[node]]
name = "n2"
addresses = { lan = "127.0.91.2:7400", backplane = "127.0.92.2:7400" }
on_stop_failure = "exit"

[[node]]
name = "n3"
addresses = { lan = "127.0.91.3:7400", backplane = "127.0.92.3:7400" }
on_stop_failure = "exit"

# The demo service prefers n1, then n2, then n3; it stays where it lands after a failover
# until an administrator moves it back (failback = "manual").
[[group]]
name = "web"
nodes = ["n1", "n2", "n3"]
failback = "manual"

  [[group.resource]]
  name = "web-app"
  type = "application"
  params = { command = "sleep 1000000" }
TOML

"$bin/eternectl" config check "$dir/cluster.toml"
"$bin/eternectl" ca init --dir "$dir/tls" >/dev/null
for n in n1 n2 n3; do "$bin/eternectl" cert issue "$n" --dir "$dir/tls" >/dev/null; done

start() {
  local n=$1
  mkdir -p "$dir/$n"
  # eterned is two processes (a monitor and its core); setsid gives them a process group of
  # their own, so that "n1 dies" below can kill both at once, as a power cut would.
  setsid "$bin/eterned" --config "$dir/cluster.toml" --node "$n" --state-dir "$dir/$n/state" \
    --tls-dir "$dir/tls" --run-dir "$dir/$n/run" --control-socket "$dir/$n/control.sock" \
    --events "$dir/$n/events.jsonl" >>"$dir/$n/eterned.log" 2>&1 &
  pids+=($!)
  disown $!
  echo $! >"$dir/$n/eterned.pid"
}
ctl() { local n=$1; shift; "$bin/eternectl" "$@" --socket "$dir/$n/control.sock"; }
# Wait (at most 30 s) until node $1 runs group web (it reports its own instance's status).
wait_for() {
  for _ in $(seq 1 300); do
    if ctl "$1" status 2>/dev/null | grep -Eq "^web +$1 .* running"; then return 0; fi
    sleep 0.1
  done
  echo "web did not become active on $1 within 30 s; logs are in $dir"; exit 1
}

echo; echo "== Starting n1, n2, n3 (logs and event logs in $dir/NODE/)"
for n in n1 n2 n3; do start "$n"; done
wait_for n1
ctl n1 status

app_pid() { cut -d' ' -f1 "$dir/$1/run/web-app.pid" 2>/dev/null; }
echo; echo "== n1 dies: kill -9 of its eterned (both processes) and of web-app"
t0=$(date +%s%N)
kill -KILL -- "-$(cat "$dir/n1/eterned.pid")"; kill -KILL "$(app_pid n1)" 2>/dev/null || true
wait_for n2
t1=$(date +%s%N)
echo "web is active on n2, $(( (t1 - t0) / 1000000 )) ms after the kill (as seen by polling once every 100 ms)"
ctl n2 status

echo; echo "== n1 comes back: with failback = manual, web stays on n2"
start n1
sleep 3
ctl n1 status

echo; echo "== An administrator moves web back to its preferred node"
ctl n1 move web n1
wait_for n1
ctl n1 status

echo; echo "The event log of n2 (JSON lines): $dir/n2/events.jsonl"
tail -n 5 "$dir/n2/events.jsonl" || true
if $keep; then
  cat <<TXT

The cluster keeps running. Try:
  $bin/eternectl status --watch --socket $dir/n2/control.sock
  kill -9 -- -\$(cat $dir/n1/eterned.pid)     # n1's eterned, both processes: web moves to n2
  $bin/eternectl move web n3 --socket $dir/n2/control.sock
Stop it with: kill \$(cat $dir/n*/eterned.pid)
TXT
fi
