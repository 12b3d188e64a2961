#!/usr/bin/env bash
# pull: a ≥150 MB two-layer image (the testkit's Debian minbase plus 100 MiB of random data)
# from a loopback docker-registry, side by side:
#   berth   `berth pull` into an empty store: downloaded, verified and unpacked, ready to run
#   podman  `podman pull` into an empty storage root (overlay driver)
#   skopeo  `skopeo copy` to an OCI directory (download only, nothing unpacked)
# Each round starts from empty stores (hyperfine --prepare). Prints the three medians and
# berth's ratios to each peer, each one's mean CPU (user+sys) over the rounds, then wall, CPU
# and peak RSS of one more run of each under GNU time.
#
#   bash scripts/bench/pull.sh          (as root, after a release build; scripts/bench/run does both)
#   RUNS=5 RANDOM_MIB=100 bash scripts/bench/pull.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/lib.sh

runs=${RUNS:-5}
random_mib=${RANDOM_MIB:-100}
berth=${BERTH:-$PWD/target/release/berth}
[ -x "$berth" ] || cargo build --release -p berth
fixture=${FIXTURE:-$PWD/target/release/berth-fixture}
[ -x "$fixture" ] || cargo build --release -p berth-testkit --bin berth-fixture
layout=$("$fixture" debian-layout "$random_mib")

work=$(mktemp -d /var/tmp/berth-bench-pull.XXXXXX)
registry_pid=
cleanup() {
  local status=$?
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  podman --root "$work/podman-root" --runroot "$work/podman-run" --storage-driver overlay \
    system reset --force >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

# The registry: docker-registry on a free loopback port, plain HTTP, its own storage.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break
  sleep 0.1
done
image=127.0.0.1:$port/bench/debian:latest
skopeo copy --quiet --dest-tls-verify=false "oci:$layout:latest" "docker://$image"
size=$(skopeo inspect --tls-verify=false --raw "docker://$image" | jq '[.layers[].size] | add')
echo "pull: $image, $(jq '.layers | length' < <(skopeo inspect --tls-verify=false --raw "docker://$image")) layers, $((size / 1000000)) MB compressed" >&2

berth_cmd="$berth --root $work/berth pull -q --tls-verify=false $image"
podman_cmd="podman --root $work/podman-root --runroot $work/podman-run --storage-driver overlay pull -q --tls-verify=false $image"
skopeo_cmd="skopeo copy --quiet --src-tls-verify=false docker://$image oci:$work/skopeo-oci:latest"
prepare="podman --root $work/podman-root --runroot $work/podman-run --storage-driver overlay system reset --force >/dev/null 2>&1; rm -rf $work/berth $work/podman-root $work/podman-run $work/skopeo-oci; sync"

json="$bench_out/pull.json"
hyperfine --style basic --runs "$runs" --export-json "$json" --prepare "$prepare" \
  -n berth "$berth_cmd" -n podman "$podman_cmd" -n skopeo "$skopeo_cmd" >&2
jq -r '
  (.results[0].median * 1000) as $b | (.results[1].median * 1000) as $p |
  (.results[2].median * 1000) as $s |
  "pull: berth \($b | round) ms, podman \($p | round) ms, skopeo \($s | round) ms, " +
  "ratio berth/podman \($b / $p * 1000 | round / 1000), berth/skopeo \($b / $s * 1000 | round / 1000)"' \
  "$json" | tee -a "$bench_out/results.txt"
# CPU per run from the same hyperfine rounds (mean user + system seconds).
jq -r '.results[] | "pull: \(.command | split(" ")[0] | split("/")[-1]) cpu \(.user * 100 | round / 100)+\(.system * 100 | round / 100) s per run (hyperfine mean)"' \
  "$json" | tee -a "$bench_out/results.txt"

# One more run of each under GNU time for CPU and peak memory.
for name in berth podman skopeo; do
  eval "$prepare"
  cmd_var="${name}_cmd"
  /usr/bin/time -f "pull: $name wall %e s, cpu %U+%S s, peak rss %M KiB" \
    bash -c "${!cmd_var} >/dev/null" 2>&1 | tail -1 | tee -a "$bench_out/results.txt"
done
