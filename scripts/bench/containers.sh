#!/bin/sh
# Containers, side by side with Podman (runc, cgroupfs, no network for both), in one
# hyperfine run each, on the same busybox image:
#   1. `run --rm IMAGE true`, end to end            (goal: berth <= 1/10 of podman)
#   2. `ps -a` with 100 created containers          (goal: berth < 50 ms)
#   3. `exec CONTAINER true` into a running one     (berth vs podman exec)
#   4. the resident set of berth's monitor (berth-monitor, once it has taken over) vs conmon's,
#      for one `run -d ... sleep` (idle)
#      and, sampled 20 times, for a container logging 20 MB of 64-byte lines (peak)
#
#   scripts/bench/containers.sh [ROUNDS]     (as root; default 20 rounds, at least 10)
#   SKIP_BUILD=1 scripts/bench/containers.sh  times the release build already there
#   RUNROOTS=disk scripts/bench/containers.sh keeps the runroots beside the roots
#
# Both engines keep their images and containers (--root) under /var/tmp and their per-boot
# state (--runroot, and podman's --tmpdir) on a tmpfs under /dev/shm, where a stock Debian's
# /run would hold them (both engines' defaults are under /run). This machine's /run is the
# same journal-less ext4 as /var/tmp, where a new inode costs more the more inodes were
# deleted in the last minutes (ext4's recently_deleted() scan): with RUNROOTS=disk the run
# --rm figures of both depend on how many files the previous benchmarks and tests removed.
#
# Each line reports hyperfine's median wall time and its mean user and system CPU time, and
# the load average is printed before and after (the machine is shared).
#
# Needs: hyperfine, podman, runc, conmon, skopeo, jq, busybox-static (Debian packages) and
# cargo for the release build of berth and berth-fixture. Podman gets a throwaway --root and
# --runroot; the image goes in with `skopeo copy oci:DIR:latest containers-storage:...`.
set -eu

ROUNDS=${1:-20}
[ "$ROUNDS" -ge 10 ] || { echo "containers.sh: use at least 10 rounds" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "containers.sh: run as root" >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/../.." && pwd)
# SKIP_BUILD=1 times the release binaries already built.
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p berth -p berth-testkit --bin berth --bin berth-monitor \
    --bin berth-fixture --manifest-path "$REPO/Cargo.toml" >&2
TARGET=$(cargo metadata --format-version 1 --no-deps --manifest-path "$REPO/Cargo.toml" \
    | jq -r .target_directory)

WORK=$(mktemp -d /var/tmp/berth-bench-containers.XXXXXX)
case "${RUNROOTS:-tmpfs}" in
    tmpfs) RUNW=$(mktemp -d /dev/shm/berth-bench-containers.XXXXXX) ;;
    disk) RUNW=$WORK ;;
    *) echo "containers.sh: RUNROOTS is tmpfs or disk" >&2; exit 2 ;;
esac
B="$TARGET/release/berth --root $WORK/berth --runroot $RUNW/berth-run"
# Its own --tmpdir too: libpod's default (/run/libpod) is shared by every podman on the host.
P="podman --root $WORK/podman --runroot $RUNW/podman-run --tmpdir $RUNW/podman-tmp \
--runtime runc --cgroup-manager cgroupfs --events-backend file --storage-driver overlay"
# Podman's default nofile limit is above this machine's hard limit.
NOFILE=$(ulimit -Hn)
NPROC=4096
RUN_FLAGS="--network none --ulimit nofile=$NOFILE:$NOFILE --ulimit nproc=$NPROC:$NPROC"
cleanup() {
    $B rm -af -t 0 >/dev/null 2>&1 || true
    $P rm -af -t 0 >/dev/null 2>&1 || true
    $P system reset -f >/dev/null 2>&1 || true
    umount -R "$WORK/podman" 2>/dev/null || true
    rm -rf "$WORK" "$RUNW"
}
trap cleanup EXIT

"$TARGET/release/berth-fixture" busybox-layout "$WORK/layout" >/dev/null
$B load -i "$WORK/layout" >/dev/null
$B tag "$($B images -q | head -n 1)" localhost/busybox:latest
skopeo copy --quiet "oci:$WORK/layout:latest" \
    "containers-storage:[overlay@$WORK/podman+$RUNW/podman-run]localhost/busybox:latest"

summary() {
    jq -r --arg what "$1" '
      def ms: . * 1000 * 100 | round / 100;
      (.results[0]) as $b | (.results[1]) as $p |
      "\($what): berth \($b.median | ms) ms (user \($b.user | ms), sys \($b.system | ms)), " +
      "podman \($p.median | ms) ms (user \($p.user | ms), sys \($p.system | ms)), " +
      "ratio berth/podman \($b.median / $p.median * 1000 | round / 1000)"' "$2"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); runroots on ${RUNROOTS:-tmpfs}" >&2
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
monitor_of() { pgrep -f "__berth-monitor.*$1" | head -n 1; }
conmon_of() { pgrep -f "conmon.*-n $1 " | head -n 1; }
# berth's monitor starts as berth and execs berth-monitor once the container runs: sample that.
watched() {
    n=0
    while [ "$(readlink "/proc/$1/exe")" != "$TARGET/release/berth-monitor" ] && [ $n -lt 500 ]; do
        sleep 0.01; n=$((n + 1))
    done
    echo "$1"
}
berth_rss=$(rss "$(watched "$(monitor_of "$($B inspect --format '{{.Id}}' bench-exec)")")")
conmon_rss=$(rss "$(conmon_of bench-exec)")
# 20 MB of 64-byte lines, again and again: the peak of 20 samples, one every 0.25 s.
LOGGER='while true; do yes 0123456789012345678901234567890123456789012345678901234567890 | head -c 20000000; sleep 1; done'
$B run -d --name bench-log localhost/busybox sh -c "$LOGGER" >/dev/null
$P run -d $RUN_FLAGS --name bench-log localhost/busybox sh -c "$LOGGER" >/dev/null
bmon=$(watched "$(monitor_of "$($B inspect --format '{{.Id}}' bench-log)")")
pmon=$(conmon_of bench-log)
berth_peak=0
conmon_peak=0
n=0
while [ $n -lt 20 ]; do
    r=$(rss "$bmon"); [ "$r" -gt "$berth_peak" ] && berth_peak=$r
    r=$(rss "$pmon"); [ "$r" -gt "$conmon_peak" ] && conmon_peak=$r
    sleep 0.25
    n=$((n + 1))
done
$B rm -f -t 0 bench-log >/dev/null
$P rm -f -t 0 bench-log >/dev/null
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

summary "run --rm busybox true" "$WORK/run.json"
summary "ps -a, 100 containers" "$WORK/ps.json"
summary "exec true" "$WORK/exec.json"
echo "monitor RSS, idle: berth $berth_rss KiB, conmon $conmon_rss KiB"
echo "monitor RSS, logging (peak of 20 samples): berth $berth_peak KiB, conmon $conmon_peak KiB"
