#!/bin/sh
# Networking, side by side with Podman (runc, cgroupfs, its default bridge through netavark),
# rootful, on the same busybox image, in one hyperfine run each:
#   1. what `run -d -p` adds over `run -d --network none` (the default bridge network is
#      set up for the first container and taken down with the last, each round)
#   2. connection setup through the published port: one HTTP GET of a tiny page (curl)
#   3. throughput of a large download (256 MiB) through the published port
#   4. the memory of the port forwarding per container: processes besides the monitor
#
#   [PROFILE=debug] scripts/bench/network.sh [ROUNDS]   (as root; default 20 rounds, >= 10)
#
# Needs: hyperfine, podman, runc, conmon, netavark, skopeo, jq, curl, busybox-static (Debian
# packages) and cargo for the release build of berth and berth-fixture. Traffic stays on the
# host's loopback and the two bridges; everything is removed at the end.
set -eu

ROUNDS=${1:-20}
[ "$ROUNDS" -ge 10 ] || { echo "network.sh: use at least 10 rounds" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "network.sh: run as root" >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/../.." && pwd)
# PROFILE=debug skips the long release build; the data path (kernel DNAT) does not depend on
# it, but berth's own run time does.
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then RELEASE=--release; else RELEASE=; fi
cargo build $RELEASE -p berth -p berth-testkit --bin berth --bin berth-fixture \
    --manifest-path "$REPO/Cargo.toml" >&2
TARGET=$(cargo metadata --format-version 1 --no-deps --manifest-path "$REPO/Cargo.toml" \
    | jq -r .target_directory)/$PROFILE

WORK=$(mktemp -d /var/tmp/berth-bench-network.XXXXXX)
B="$TARGET/berth --root $WORK/berth --runroot $WORK/berth-run"
P="podman --root $WORK/podman --runroot $WORK/podman-run --runtime runc \
--cgroup-manager cgroupfs --events-backend file --storage-driver overlay"
NOFILE=$(ulimit -Hn)
PFLAGS="--ulimit nofile=$NOFILE:$NOFILE --ulimit nproc=4096:4096"
BPORT=18080
PPORT=18081
cleanup() {
    $B rm -af >/dev/null 2>&1 || true
    $B network prune -f >/dev/null 2>&1 || true
    $B network rm -f berth >/dev/null 2>&1 || true
    $P rm -af -t 0 >/dev/null 2>&1 || true
    umount -R "$WORK/podman" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$TARGET/berth-fixture" busybox-layout "$WORK/layout" >/dev/null
$B load -i "$WORK/layout" >/dev/null
$B tag "$($B images -q | head -n 1)" localhost/busybox:latest
skopeo copy --quiet "oci:$WORK/layout:latest" \
    "containers-storage:[overlay@$WORK/podman+$WORK/podman-run]localhost/busybox:latest"

summary() {
    jq -r --arg what "$1" '
      (.results[0].median * 1000) as $b | (.results[1].median * 1000) as $p |
      "\($what): berth \($b * 100 | round / 100) ms, podman \($p * 100 | round / 100) ms, " +
      "ratio berth/podman \($b / $p * 1000 | round / 1000)"' "$2"
}

# The server: busybox httpd with a small page and a 256 MiB file in /tmp.
HTTPD='echo hello > /tmp/index.html; dd if=/dev/zero of=/tmp/big bs=1M count=256 2>/dev/null; exec httpd -f -p 80 -h /tmp'

echo "== 1. run -d, with and without -p" >&2
hyperfine -N --warmup 2 --runs "$ROUNDS" --export-json "$WORK/run.json" \
    --prepare "$B rm -af" \
    -n "berth run -d" "$B run -d --network none localhost/busybox sleep 100" \
    -n "berth run -d -p" "$B run -d -p 127.0.0.1:$BPORT:80 localhost/busybox sleep 100" \
    >&2
hyperfine -N --warmup 2 --runs "$ROUNDS" --export-json "$WORK/prun.json" \
    --prepare "$P rm -af -t 0" \
    -n "podman run -d" "$P run -d $PFLAGS --network none localhost/busybox sleep 100" \
    -n "podman run -d -p" "$P run -d $PFLAGS -p 127.0.0.1:$PPORT:80 localhost/busybox sleep 100" \
    >&2
$B rm -af >/dev/null
$P rm -af -t 0 >/dev/null

$B run -d --name web -p "127.0.0.1:$BPORT:80" localhost/busybox sh -c "$HTTPD" >/dev/null
$P run -d $PFLAGS --name web -p "127.0.0.1:$PPORT:80" localhost/busybox sh -c "$HTTPD" >/dev/null
for port in $BPORT $PPORT; do
    i=0
    until curl -fs "http://127.0.0.1:$port/big" -o /dev/null; do
        i=$((i + 1)); [ $i -lt 300 ] || { echo "port $port never answered" >&2; exit 1; }
        sleep 0.1
    done
done

echo "== 2. connection setup: one GET of a 6-byte page" >&2
hyperfine -N --warmup 5 --runs "$((ROUNDS * 5))" --export-json "$WORK/get.json" \
    -n berth "curl -fs -o /dev/null http://127.0.0.1:$BPORT/" \
    -n podman "curl -fs -o /dev/null http://127.0.0.1:$PPORT/" >&2

echo "== 3. a 256 MiB download" >&2
hyperfine -N --warmup 1 --runs "$ROUNDS" --export-json "$WORK/big.json" \
    -n berth "curl -fs -o /dev/null http://127.0.0.1:$BPORT/big" \
    -n podman "curl -fs -o /dev/null http://127.0.0.1:$PPORT/big" >&2

echo "== 4. forwarder processes" >&2
# Rootful, both forward with kernel DNAT rules; count what else runs for the container:
# processes other than the monitor (berth's, conmon) and the container itself.
forwarders() {
    ps -eo rss=,comm= | awk '$2 ~ /^(pasta|passt|slirp4netns|rootlessport|conmon-rs|docker-proxy)/ { n++; kb += $1 } END { printf "%d processes, %d KiB\n", n, kb }'
}
fwd=$(forwarders)

summary "run -d" "$WORK/run.json"
jq -r '(.results[1].median - .results[0].median) * 1000 | "berth: -p adds \(. * 100 | round / 100) ms"' "$WORK/run.json"
jq -r '(.results[1].median - .results[0].median) * 1000 | "podman: -p adds \(. * 100 | round / 100) ms"' "$WORK/prun.json"
summary "GET of a small page" "$WORK/get.json"
jq -r '.results[] | "\(.command): 256 MiB in \(.median * 1000 | round) ms = \(256 / .median | round) MiB/s"' "$WORK/big.json"
echo "forwarders while both run: $fwd"
