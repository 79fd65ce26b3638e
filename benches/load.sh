#!/usr/bin/env bash
# One simulator load run against a separate `drover serve`, both release
# builds on loopback; prints the simulator's summary and the server's CPU time
# and peak RSS, and leaves NAME.json (the simulator's report) in the current
# directory. Build first: cargo build --release --bin drover
#
# usage: benches/load.sh NAME [drover sim options...]
#   benches/load.sh steady-1k --devices 1000 --rate 1 --duration 30 --ramp 5
set -euo pipefail
name=$1
shift
bin=${DROVER_BIN:-$(dirname "$0")/../target/release/drover}
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
"$bin" serve --set "data_dir=$data" \
    --set devices.gt06.listen=127.0.0.1:25023 --set devices.teltonika.listen=127.0.0.1:25027 \
    --set mqtt.embedded_listen=127.0.0.1:21883 --set http.listen=127.0.0.1:28080 \
    >"serve-$name.log" 2>&1 &
server=$!
sleep 1.5
cpu() { awk '{print $14 + $15}' "/proc/$server/stat"; }
before=$(cpu)
"$bin" sim --gt06-port 25023 --teltonika-port 25027 --mqtt mqtt://127.0.0.1:21883 \
    --quiet --report "$name.json" "$@"
after=$(cpu)
ticks=$(getconf CLK_TCK)
echo "server: $(((after - before) * 1000 / ticks)) ms CPU, peak RSS $(awk '/VmHWM/{print $2}' "/proc/$server/status") kB"
kill -INT "$server"
wait "$server"
