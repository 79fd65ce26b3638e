#!/usr/bin/env bash
# One simulator load run against a separate `drover serve`, both release
# builds on loopback; prints the simulator's summary, the server's CPU time,
# peak RSS and CPU per thread, and its /health journal and sinks (backlog =
# committed records a sink has not taken yet) right after the simulator
# stopped and again 5 s later. Leaves NAME.json (the simulator's report) and
# health-NAME.json in the current directory.
# Build first: cargo build --release --bin drover
#
# usage: benches/load.sh NAME [drover sim options...]
#   benches/load.sh steady-1k --devices 1000 --rate 1 --duration 30 --ramp 5
# DROVER_BIN overrides the binary; DROVER_SET adds server settings
# (space-separated KEY=VALUE, e.g. DROVER_SET="journal.commit_ms=5").
set -euo pipefail
name=$1
shift
bin=${DROVER_BIN:-$(dirname "$0")/../target/release/drover}
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
extra=()
for kv in ${DROVER_SET:-}; do extra+=(--set "$kv"); done
# The node reads every DROVER_* variable as configuration: hide ours.
unset DROVER_BIN DROVER_SET
"$bin" serve --set "data_dir=$data" \
    --set devices.gt06.listen=127.0.0.1:25023 --set devices.teltonika.listen=127.0.0.1:25027 \
    --set mqtt.embedded_listen=127.0.0.1:21883 --set http.listen=127.0.0.1:28080 \
    --set devices.max_connections_per_ip=0 --set devices.register_unknown=true \
    "${extra[@]}" >"serve-$name.log" 2>&1 &
server=$!
sleep 1.5
kill -0 "$server" 2>/dev/null || { tail -5 "serve-$name.log"; exit 1; }
cpu() { awk '{print $14 + $15}' "/proc/$server/stat"; }
ticks=$(getconf CLK_TCK)
before=$(cpu)
"$bin" sim --gt06-port 25023 --teltonika-port 25027 --mqtt mqtt://127.0.0.1:21883 \
    --quiet --report "$name.json" "$@"
after=$(cpu)
echo "server: $(((after - before) * 1000 / ticks)) ms CPU, peak RSS $(awk '/VmHWM/{print $2}' "/proc/$server/status") kB"
# CPU per thread name (whole life of the server), busiest first.
for t in /proc/$server/task/*; do
    printf '%s %s\n' "$(tr ' ' '_' <"$t/comm")" "$(awk '{print $14 + $15}' "$t/stat")"
done | awk -v hz="$ticks" '{ms[$1] += $2 * 1000 / hz; n[$1]++}
    END {for (k in ms) printf "  %-18s %3d thread(s) %7d ms\n", k, n[k], ms[k]}' | sort -k4 -nr | head -12
health() {
    curl -fsS http://127.0.0.1:28080/health |
        jq -c '{journal: .journal | {committed, commits, fsyncs, fsync_max_us, acked_records, refused_batches},
                sinks: [.sinks[] | {name, backlog, written, batches, replayed}]}' || echo "(no /health)"
}
echo "health at the end: $(health | tee "health-$name.json")"
sleep 5
echo "health 5 s later:  $(health)"
kill -INT "$server"
wait "$server"
