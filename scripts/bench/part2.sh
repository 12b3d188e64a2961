#!/bin/sh
# Issue 7, side by side with Podman (runc, cgroupfs, no network for both), one hyperfine run
# each:
#   1. `stats --no-stream` with 20 running containers (busybox `sleep`);
#   2. `run -d` of 50 containers in parallel: the wall time until every `run -d` has
#      returned, which both engines do once the container runs (PARALLEL_ROUNDS rounds,
#      default 5; each round starts from no containers, removed in hyperfine's --prepare).
#
#   scripts/bench/part2.sh [ROUNDS]     (as root; default 20 rounds, at least 10)
#
# Each line also gives the mean user and system CPU time hyperfine measured: that of the
# timed processes and the children they waited for, so not of the monitors (berth) or
# conmon (podman) that stay with the containers.
# BERTH_BIN and FIXTURE_BIN, when set, are used instead of a release build (a quicker figure
# from a debug build, which BENCHMARKS.md then says).
#
# Needs: hyperfine, podman, runc, conmon, skopeo, jq (Debian packages) and cargo for the
# release build of berth and berth-fixture. Podman gets a throwaway --root and --runroot.
set -eu

ROUNDS=${1:-20}
COUNT=20
export COUNT
[ "$ROUNDS" -ge 10 ] || { echo "part2.sh: use at least 10 rounds" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "part2.sh: run as root" >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${BERTH_BIN:-}" ]; then
    cargo build --release -p berth -p berth-testkit --bin berth --bin berth-monitor --bin berth-fixture \
        --manifest-path "$REPO/Cargo.toml" >&2
    TARGET=$(cargo metadata --format-version 1 --no-deps --manifest-path "$REPO/Cargo.toml" \
        | jq -r .target_directory)
    BERTH_BIN=$TARGET/release/berth
    FIXTURE_BIN=$TARGET/release/berth-fixture
fi

WORK=$(mktemp -d /var/tmp/berth-bench-part2.XXXXXX)
B="$BERTH_BIN --root $WORK/berth --runroot $WORK/berth-run"
P="podman --root $WORK/podman --runroot $WORK/podman-run --runtime runc \
--cgroup-manager cgroupfs --events-backend file --storage-driver overlay"
NOFILE=$(ulimit -Hn)
RUN_FLAGS="--network none --ulimit nofile=$NOFILE:$NOFILE --ulimit nproc=4096:4096"
cleanup() {
    $B rm -af -t 0 >/dev/null 2>&1 || true
    $P rm -af -t 0 >/dev/null 2>&1 || true
    $P system reset -f >/dev/null 2>&1 || true
    umount -R "$WORK/podman/overlay" 2>/dev/null || true
    umount -R "$WORK/podman" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$FIXTURE_BIN" busybox-layout "$WORK/layout" >/dev/null
$B load -i "$WORK/layout" >/dev/null
$B tag "$($B images -q | head -n 1)" localhost/busybox:latest
skopeo copy --quiet "oci:$WORK/layout:latest" \
    "containers-storage:[overlay@$WORK/podman+$WORK/podman-run]localhost/busybox:latest"

i=0
while [ $i -lt $COUNT ]; do
    $B run -d $RUN_FLAGS localhost/busybox sleep 1000 >/dev/null
    $P run -d $RUN_FLAGS localhost/busybox sleep 1000 >/dev/null
    i=$((i + 1))
done
[ "$($B stats --no-stream --format '{{.ID}}' | wc -l)" = $COUNT ] || {
    echo "part2.sh: berth stats does not list $COUNT containers" >&2; exit 1; }

echo "== stats --no-stream, $COUNT containers" >&2
hyperfine -N --warmup 3 --runs "$ROUNDS" --export-json "$WORK/stats.json" \
    -n berth "$B stats --no-stream" -n podman "$P stats --no-stream" >&2
summary() {
    jq -r --arg what "$1" '
      def ms: . * 1000 | . * 100 | round / 100;
      def cpu: "CPU \(.user | ms) + \(.system | ms) ms";
      .results[0] as $b | .results[1] as $p |
      "\($what): berth \($b.median | ms) ms (\($b | cpu)), podman \($p.median | ms) ms " +
      "(\($p | cpu)), ratio berth/podman \($b.median / $p.median * 1000 | round / 1000)"' "$2"
}
summary "stats --no-stream ($COUNT containers)" "$WORK/stats.json"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

PARALLEL=50
PARALLEL_ROUNDS=${PARALLEL_ROUNDS:-5}
# Starts N `run -d` at once and waits for each; fails if one failed.
cat > "$WORK/parallel-run" <<'SCRIPT'
#!/bin/sh
n=$1
shift
pids=
i=0
while [ "$i" -lt "$n" ]; do
    "$@" >/dev/null &
    pids="$pids $!"
    i=$((i + 1))
done
rc=0
for p in $pids; do wait "$p" || rc=1; done
exit $rc
SCRIPT
chmod +x "$WORK/parallel-run"
echo "== run -d of $PARALLEL containers in parallel" >&2
hyperfine -N --runs "$PARALLEL_ROUNDS" --export-json "$WORK/parallel.json" \
    --prepare "$B rm -af -t 0" --prepare "$P rm -af -t 0" \
    -n berth "$WORK/parallel-run $PARALLEL $B run -d $RUN_FLAGS localhost/busybox sleep 1000" \
    -n podman "$WORK/parallel-run $PARALLEL $P run -d $RUN_FLAGS localhost/busybox sleep 1000" >&2
# The last round's containers are still there: every one of them must run.
for engine in "$B" "$P"; do
    running=$($engine ps -q --filter status=running | wc -l)
    [ "$running" = $PARALLEL ] || {
        echo "part2.sh: $running of $PARALLEL containers run after the last round" >&2; exit 1; }
done
summary "run -d of $PARALLEL containers in parallel, until all run" "$WORK/parallel.json"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
