#!/bin/sh
# Containers, side by side with Podman (runc, cgroupfs, no network for both), in one
# hyperfine run each, on the same busybox image:
#   1. `run --rm IMAGE true`, end to end            (goal: berth <= 1/10 of podman)
#   2. `ps -a` with 100 created containers          (goal: berth < 50 ms)
#   3. `exec CONTAINER true` into a running one     (berth vs podman exec)
#   4. the resident set of berth's monitor vs conmon's, for one `run -d ... sleep`
#
#   scripts/bench/containers.sh [ROUNDS]     (as root; default 20 rounds, at least 10)
#
# Needs: hyperfine, podman, runc, conmon, skopeo, jq, busybox-static (Debian packages) and
# cargo for the release build of berth and berth-fixture. Podman gets a throwaway --root and
# --runroot; the image goes in with `skopeo copy oci:DIR:latest containers-storage:...`.
set -eu

ROUNDS=${1:-20}
[ "$ROUNDS" -ge 10 ] || { echo "containers.sh: use at least 10 rounds" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "containers.sh: run as root" >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release -p berth -p berth-testkit --bin berth --bin berth-fixture \
    --manifest-path "$REPO/Cargo.toml" >&2
TARGET=$(cargo metadata --format-version 1 --no-deps --manifest-path "$REPO/Cargo.toml" \
    | jq -r .target_directory)

WORK=$(mktemp -d /var/tmp/berth-bench-containers.XXXXXX)
B="$TARGET/release/berth --root $WORK/berth --runroot $WORK/berth-run"
P="podman --root $WORK/podman --runroot $WORK/podman-run --runtime runc \
--cgroup-manager cgroupfs --events-backend file --storage-driver overlay"
# Podman's default nofile limit is above this machine's hard limit.
NOFILE=$(ulimit -Hn)
NPROC=4096
RUN_FLAGS="--network none --ulimit nofile=$NOFILE:$NOFILE --ulimit nproc=$NPROC:$NPROC"
cleanup() {
    $B rm -af -t 0 >/dev/null 2>&1 || true
    $P rm -af -t 0 >/dev/null 2>&1 || true
    $P system reset -f >/dev/null 2>&1 || true
    umount -R "$WORK/podman" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$TARGET/release/berth-fixture" busybox-layout "$WORK/layout" >/dev/null
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

echo "== 1. run --rm busybox true" >&2
hyperfine -N --warmup 3 --runs "$ROUNDS" --export-json "$WORK/run.json" \
    -n berth "$B run --rm $RUN_FLAGS localhost/busybox true" \
    -n podman "$P run --rm $RUN_FLAGS localhost/busybox true" >&2

echo "== 2. ps -a with 100 containers" >&2
i=0
while [ $i -lt 100 ]; do
    $B create localhost/busybox true >/dev/null
    $P create $RUN_FLAGS localhost/busybox true >/dev/null
    i=$((i + 1))
done
hyperfine -N --warmup 3 --runs "$ROUNDS" --export-json "$WORK/ps.json" \
    -n berth "$B ps -a" -n podman "$P ps -a" >&2
$B rm -a >/dev/null
$P rm -a >/dev/null

echo "== 3. exec true" >&2
$B run -d --name bench-exec localhost/busybox sleep 1000 >/dev/null
$P run -d $RUN_FLAGS --name bench-exec localhost/busybox sleep 1000 >/dev/null
hyperfine -N --warmup 3 --runs "$ROUNDS" --export-json "$WORK/exec.json" \
    -n berth "$B exec bench-exec true" -n podman "$P exec bench-exec true" >&2

echo "== 4. monitor RSS" >&2
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
monitor=$(pgrep -f "__berth-monitor.*$WORK/berth-run" | head -n 1)
conmon=$(pgrep -f "conmon.*$WORK/podman" | head -n 1)
berth_rss=$(rss "$monitor")
conmon_rss=$(rss "$conmon")

summary "run --rm busybox true" "$WORK/run.json"
summary "ps -a, 100 containers" "$WORK/ps.json"
summary "exec true" "$WORK/exec.json"
echo "monitor RSS: berth $berth_rss KiB, conmon $conmon_rss KiB"
