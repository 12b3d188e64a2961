#!/bin/sh
# The monitor's duties, side by side with Podman (runc, cgroupfs, no network for both):
#   1. the resident set (VmRSS, VmHWM from /proc) of berth's monitor whose container runs a
#      healthcheck every second, after SECONDS of checks, beside an idle monitor, and conmon's
#      for the same two podman containers. Podman runs its checks from systemd timers, and
#      there is no systemd here: the script runs `podman healthcheck run` once a second in
#      their place (its exec gets a conmon of its own; the container's conmon is measured).
#   2. one healthcheck by hand, `healthcheck run` of `true`, in one hyperfine run: the cost
#      berth's monitor pays once per interval for its `berth healthcheck run` child.
#
#   scripts/bench/monitor.sh [SECONDS] [ROUNDS]   (as root; default 60 s, 20 rounds, ≥ 10)
#
# Needs: hyperfine, podman, runc, conmon, skopeo, jq, busybox-static (Debian packages) and
# cargo for the release build of berth and berth-fixture. Podman gets a throwaway --root and
# --runroot; the image goes in with `skopeo copy oci:DIR:latest containers-storage:...`.
set -eu

DURATION=${1:-60}
ROUNDS=${2:-20}
[ "$ROUNDS" -ge 10 ] || { echo "monitor.sh: use at least 10 rounds" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "monitor.sh: run as root" >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release -p berth -p berth-testkit --bin berth --bin berth-monitor --bin berth-fixture \
    --manifest-path "$REPO/Cargo.toml" >&2
TARGET=$(cargo metadata --format-version 1 --no-deps --manifest-path "$REPO/Cargo.toml" \
    | jq -r .target_directory)

WORK=$(mktemp -d /var/tmp/berth-bench-monitor.XXXXXX)
B="$TARGET/release/berth --root $WORK/berth --runroot $WORK/berth-run"
P="podman --root $WORK/podman --runroot $WORK/podman-run --runtime runc \
--cgroup-manager cgroupfs --events-backend file --storage-driver overlay"
# Podman's default nofile limit is above this machine's hard limit.
NOFILE=$(ulimit -Hn)
RUN_FLAGS="--network none --ulimit nofile=$NOFILE:$NOFILE --ulimit nproc=4096:4096"
CHECK="--health-cmd true --health-interval 1s"
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

echo "== 1. monitor RSS with a healthcheck every second, for $DURATION s" >&2
$B run -d $RUN_FLAGS --name checked $CHECK localhost/busybox sleep 100000 >/dev/null
$B run -d $RUN_FLAGS --name idle localhost/busybox sleep 100000 >/dev/null
# Podman says it cannot reach systemd to add the timer; the container starts all the same.
$P run -d $RUN_FLAGS --name checked $CHECK localhost/busybox sleep 100000 >/dev/null 2>&1
$P run -d $RUN_FLAGS --name idle localhost/busybox sleep 100000 >/dev/null

monitor_of() { pgrep -f "__berth-monitor.*\"id\":\"$($B inspect --format '{{.Id}}' "$1")\""; }
conmon_of() { pgrep -f "conmon.*$($P inspect --format '{{.Id}}' "$1")" | head -n 1; }
field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
# utime + stime in milliseconds.
cpu_ms() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) * 1000 / hz }' \
        "/proc/$1/stat"
}
bm=$(monitor_of checked)
bi=$(monitor_of idle)
pm=$(conmon_of checked)
pi=$(conmon_of idle)
b_cpu0=$(cpu_ms "$bm")
t0=$(date +%s)
max_rss=0
i=0
while [ "$i" -lt "$DURATION" ]; do
    sleep 1
    $P healthcheck run checked >/dev/null 2>&1 || true
    rss=$(field "$bm" VmRSS)
    [ "$rss" -gt "$max_rss" ] && max_rss=$rss
    i=$((i + 1))
done
elapsed=$(($(date +%s) - t0))
b_cpu=$(awk -v a="$b_cpu0" -v b="$(cpu_ms "$bm")" 'BEGIN { print b - a }')
checks=$(grep '"Status":"health_status"' "$WORK/berth-run/events/events.log" \
    | grep -c '"Name":"checked"' || true)
status=$($B ps --filter name=checked --format '{{.Status}}')

echo "== 2. healthcheck run, one check by hand" >&2
hyperfine -N --warmup 3 --runs "$ROUNDS" --export-json "$WORK/check.json" \
    -n berth "$B healthcheck run checked" -n podman "$P healthcheck run checked" >&2

echo "load: $(uptime)"
echo "berth monitor with a check every second: VmRSS $(field "$bm" VmRSS) KiB" \
    "(highest sampled $max_rss KiB), VmHWM $(field "$bm" VmHWM) KiB;" \
    "$checks checks in $elapsed s, the monitor's own CPU ${b_cpu} ms; ps: $status"
echo "berth monitor idle: VmRSS $(field "$bi" VmRSS) KiB, VmHWM $(field "$bi" VmHWM) KiB"
echo "conmon, container with a healthcheck (run by the script): VmRSS $(field "$pm" VmRSS) KiB," \
    "VmHWM $(field "$pm" VmHWM) KiB"
echo "conmon idle: VmRSS $(field "$pi" VmRSS) KiB, VmHWM $(field "$pi" VmHWM) KiB"
jq -r '.results[] | "healthcheck run, \(.command): median \(.median * 1000 * 100 | round / 100) ms,
  user \(.user * 1000 * 100 | round / 100) ms, system \(.system * 1000 * 100 | round / 100) ms"' \
    "$WORK/check.json"
