#!/bin/sh
# Networking, side by side with Podman (runc, cgroupfs, its default bridge through netavark),
# on the same busybox image, in one hyperfine run each:
#   0. what the default network costs `run --rm true` (berth: the default bridge; podman:
#      its default bridge), against --network none
#   1. what `run -d -p` adds over `run -d --network none` (the default bridge network is
#      set up for the first container and taken down with the last, each round)
#   2. connection setup through the published port: one HTTP GET of a tiny page (curl)
#   3. throughput of a large download (256 MiB) through the published port
#   4. the memory of the port forwarding per container: processes besides the monitor
#   5. rootless, as the berth-test user: 1-4 again, berth through pasta, podman 4.3 through
#      slirp4netns and its rootlessport forwarder (its rootless default)
# Each line gives the median wall time and hyperfine's mean user and system CPU time.
#
#   [PROFILE=debug] scripts/bench/network.sh [ROUNDS]   (as root; default 20 rounds, >= 10)
#
# Needs: hyperfine, podman, runc, conmon, netavark, iptables, skopeo, jq, curl, busybox-static (Debian
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
cargo build $RELEASE -p berth -p berth-testkit --bin berth --bin berth-monitor --bin berth-fixture \
    --manifest-path "$REPO/Cargo.toml" >&2
TARGET=$(cargo metadata --format-version 1 --no-deps --manifest-path "$REPO/Cargo.toml" \
    | jq -r .target_directory)/$PROFILE

WORK=$(mktemp -d /var/tmp/berth-bench-network.XXXXXX)
B="$TARGET/berth --root $WORK/berth --runroot $WORK/berth-run"
# netavark by name: with the CNI file Debian's podman ships in /etc/cni/net.d, podman 4.3
# would pick CNI, whose plugins are not installed.
P="podman --root $WORK/podman --runroot $WORK/podman-run --runtime runc \
--cgroup-manager cgroupfs --events-backend file --storage-driver overlay --network-backend netavark"
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

# Waits up to 30 s for each published port to serve the 256 MiB file.
wait_for_ports() {
    for port in "$@"; do
        i=0
        until curl -fs "http://127.0.0.1:$port/big" -o /dev/null; do
            i=$((i + 1)); [ $i -lt 300 ] || { echo "port $port never answered" >&2; exit 1; }
            sleep 0.1
        done
    done
}

summary() {
    jq -r --arg what "$1" '
      (.results[0].median * 1000) as $b | (.results[1].median * 1000) as $p |
      "\($what): berth \($b * 100 | round / 100) ms, podman \($p * 100 | round / 100) ms, " +
      "ratio berth/podman \($b / $p * 1000 | round / 1000)"' "$2"
}

# Every result of a hyperfine JSON: median wall, mean user and system CPU, in ms.
cputimes() {
    jq -r '.results[] | "  \(.command): median \(.median * 1000 | round) ms, " +
      "user \(.user * 1000 | round) ms, system \(.system * 1000 | round) ms"' "$1"
}

echo "== 0. run --rm true, with the default network and with --network none" >&2
hyperfine -N --warmup 2 --runs "$ROUNDS" --export-json "$WORK/rm.json" \
    -n "berth run --rm (default bridge)" "$B run --rm localhost/busybox true" \
    -n "berth run --rm --network none" "$B run --rm --network none localhost/busybox true" \
    -n "podman run --rm (default bridge)" "$P run --rm $PFLAGS localhost/busybox true" \
    -n "podman run --rm --network none" "$P run --rm $PFLAGS --network none localhost/busybox true" \
    >&2

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
wait_for_ports $BPORT $PPORT

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
echo "run --rm true:"
cputimes "$WORK/rm.json"
echo "run -d / run -d -p:"
cputimes "$WORK/run.json"
cputimes "$WORK/prun.json"
echo "GET and 256 MiB, CPU of curl:"
cputimes "$WORK/get.json"
cputimes "$WORK/big.json"
$B rm -af >/dev/null
$P rm -af -t 0 >/dev/null

# 5. Rootless, as the test user, with throwaway roots of its own.
U=berth-test
id "$U" >/dev/null 2>&1 || { echo "network.sh: no user $U (scripts/setup-host)" >&2; exit 2; }
# Short and lowercase: podman refuses a runroot path longer than 50 characters and names the
# pulled image after the path.
UWORK=/tmp/bnr-$$
rm -rf "$UWORK"
mkdir -p "$UWORK/xdg"
cp "$TARGET/berth" "$UWORK/berth"
cp -r "$WORK/layout" "$UWORK/layout"
chown -R "$U:" "$UWORK"
chmod 700 "$UWORK/xdg"
chmod 755 "$WORK"
AS="runuser -u $U -- env XDG_RUNTIME_DIR=$UWORK/xdg HOME=$UWORK"
RB="$UWORK/berth --root $UWORK/berth-root --runroot $UWORK/berth-run"
RP="podman --root $UWORK/podman-root --runroot $UWORK/prun --runtime runc \
--cgroup-manager cgroupfs --events-backend file"
rootless_cleanup() {
    $AS $RB rm -af >/dev/null 2>&1 || true
    $AS $RB system migrate >/dev/null 2>&1 || true
    $AS $RP rm -af -t 0 >/dev/null 2>&1 || true
    $AS $RP system migrate >/dev/null 2>&1 || true
    $AS $RP unshare rm -rf "$UWORK/podman-root" >/dev/null 2>&1 || true
    rm -rf "$UWORK"
    cleanup
}
trap rootless_cleanup EXIT
$AS $RB load -i "$UWORK/layout" >/dev/null
$AS $RB tag "$($AS $RB images -q | head -n 1)" localhost/busybox:latest
$AS $RP pull -q "oci:$UWORK/layout:latest" >/dev/null
$AS $RP tag "$($AS $RP images -q | head -n 1)" localhost/busybox:latest
RBPORT=18082
RPPORT=18083

echo "== 5.1 rootless run -d, with and without -p" >&2
$AS hyperfine -N --warmup 2 --runs "$ROUNDS" --export-json "$UWORK/run.json" \
    --prepare "$RB rm -af" \
    -n "berth run -d (rootless)" "$RB run -d --network none localhost/busybox sleep 100" \
    -n "berth run -d -p (rootless)" "$RB run -d -p 127.0.0.1:$RBPORT:80 localhost/busybox sleep 100" \
    >&2
$AS hyperfine -N --warmup 2 --runs "$ROUNDS" --export-json "$UWORK/prun.json" \
    --prepare "$RP rm -af -t 0" \
    -n "podman run -d (rootless)" "$RP run -d $PFLAGS --network none localhost/busybox sleep 100" \
    -n "podman run -d -p (rootless)" "$RP run -d $PFLAGS -p 127.0.0.1:$RPPORT:80 localhost/busybox sleep 100" \
    >&2
$AS $RB rm -af >/dev/null
$AS $RP rm -af -t 0 >/dev/null

$AS $RB run -d --name web -p "127.0.0.1:$RBPORT:80" localhost/busybox sh -c "$HTTPD" >/dev/null
$AS $RP run -d $PFLAGS --name web -p "127.0.0.1:$RPPORT:80" localhost/busybox sh -c "$HTTPD" >/dev/null
wait_for_ports $RBPORT $RPPORT
echo "== 5.2 rootless connection setup and a 256 MiB download" >&2
hyperfine -N --warmup 5 --runs "$((ROUNDS * 5))" --export-json "$UWORK/get.json" \
    -n "berth (pasta)" "curl -fs -o /dev/null http://127.0.0.1:$RBPORT/" \
    -n "podman (rootlessport)" "curl -fs -o /dev/null http://127.0.0.1:$RPPORT/" >&2
hyperfine -N --warmup 1 --runs "$ROUNDS" --export-json "$UWORK/big.json" \
    -n "berth (pasta)" "curl -fs -o /dev/null http://127.0.0.1:$RBPORT/big" \
    -n "podman (rootlessport)" "curl -fs -o /dev/null http://127.0.0.1:$RPPORT/big" >&2
# The user's forwarders: pasta for berth's container; slirp4netns and rootlessport for
# podman's (the pause processes are left out: each engine has one per user, not per container).
# Only this run's: berth's pasta names files under UWORK; podman's helpers are the user's
# only ones (other rootless tests of the user may run pasta, not rootlessport). RSS counts
# shared pages in full, PSS shares them out.
mem() {
    n=0 rss_kb=0 pss_kb=0
    for pid in $(ps -u "$U" -o pid=,comm=,args= |
        awk -v pat="$1" -v within="$2" '$2 ~ pat && index($0, within) { print $1 }'); do
        r=$(awk '/^Rss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
        p=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
        n=$((n + 1)) rss_kb=$((rss_kb + r)) pss_kb=$((pss_kb + p))
    done
    echo "$n processes, $rss_kb KiB RSS, $pss_kb KiB PSS"
}
echo "rootless forwarding per container: berth $(mem '^(pasta|passt)' "$UWORK"); podman $(mem '^(slirp4netns|rootlessport|exe)$' '')"
jq -r '(.results[1].median - .results[0].median) * 1000 | "rootless berth: -p adds \(. * 100 | round / 100) ms"' "$UWORK/run.json"
jq -r '(.results[1].median - .results[0].median) * 1000 | "rootless podman: -p adds \(. * 100 | round / 100) ms"' "$UWORK/prun.json"
cputimes "$UWORK/run.json"
cputimes "$UWORK/prun.json"
summary "rootless GET of a small page" "$UWORK/get.json"
jq -r '.results[] | "\(.command): 256 MiB in \(.median * 1000 | round) ms = \(256 / .median | round) MiB/s"' "$UWORK/big.json"
echo "load: $(uptime)"
