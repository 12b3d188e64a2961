#!/usr/bin/env bash
# rootless: what running as an unprivileged user costs, side by side in one hyperfine run each:
#   images     `berth images` as the test user (joins the per-user user namespace first)
#              against `berth images` as root (no namespace), same image in each store
#   run        `berth run --rm busybox true` as the test user against rootless
#              `podman run --rm` (runc, overlay storage) of the same image, both --network none
#   run-net    the same, podman with its default rootless network (what a user gets)
# Both sides of a comparison start through the same setpriv wrapper, so only berth's own
# work differs. Ends by printing the pause process's RSS.
#
#   bash scripts/bench/rootless.sh          (as root; after a release build, or BERTH=…)
#   RUNS=20 bash scripts/bench/rootless.sh
#
# Needs: hyperfine, jq, podman, runc, skopeo, uidmap (Debian packages) and the test user
# berth-test with /etc/subuid and /etc/subgid ranges (scripts/setup-host --tests).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/lib.sh

runs=${RUNS:-20}
[ "$(id -u)" = 0 ] || { echo "rootless.sh: run as root (it switches to the test user)" >&2; exit 2; }
berth=${BERTH:-$PWD/target/release/berth}
[ -x "$berth" ] || cargo build --release -p berth
fixture=${FIXTURE:-$PWD/target/release/berth-fixture}
[ -x "$fixture" ] || cargo build --release -p berth-testkit --bin berth-fixture
user=berth-test
uid=$(id -u "$user")
gid=$(id -g "$user")
home=$(getent passwd "$user" | cut -d: -f6)

work=$(mktemp -d /var/tmp/berth-bench-rootless.XXXXXX)
chmod 755 "$work"
as_user() {
  setpriv --reuid="$uid" --regid="$gid" --clear-groups \
    env -i HOME="$home" USER="$user" PATH=/usr/bin:/bin:/usr/sbin:/sbin \
    XDG_RUNTIME_DIR="$work/xdg" REGISTRIES_CONFIG_PATH=/nonexistent "$@"
}
cleanup() {
  local status=$?
  as_user "$work/berth" --root "$work/u/root" --runroot "$work/u/run" rm -af >/dev/null 2>&1 || true
  as_user "$work/berth" system migrate >/dev/null 2>&1 || true
  as_user podman --root "$work/u/podman-root" --runroot "$work/u/podman-run" --storage-driver overlay \
    system reset --force >/dev/null 2>&1 || true
  # Podman's own pause process for this XDG_RUNTIME_DIR.
  if [ -f "$work/xdg/libpod/tmp/pause.pid" ]; then
    kill "$(cat "$work/xdg/libpod/tmp/pause.pid")" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

mkdir -p "$work/xdg"
chown "$uid:$gid" "$work/xdg"
chmod 700 "$work/xdg"
install -m 755 "$berth" "$work/berth"
"$fixture" busybox-layout "$work/layout" >/dev/null
chmod -R a+rX "$work/layout"
skopeo copy --quiet "oci:$work/layout:latest" \
  "docker-archive:$work/busybox.tar:localhost/busybox:latest"
chmod 644 "$work/busybox.tar"
install -d -o "$uid" -g "$gid" "$work/u"

# The same image in each store: the user's and root's berth, the user's podman.
ub="$work/berth --root $work/u/root --runroot $work/u/run"
rb="$work/berth --root $work/root-root --runroot $work/root-run"
for b in "as_user $ub" "$rb"; do
  id=$($b load -i "$work/layout" | sed -n 's/^Loaded image: sha256://p')
  $b tag "$id" localhost/busybox:latest
done
as_user podman --root "$work/u/podman-root" --runroot "$work/u/podman-run" --storage-driver overlay \
  load -q -i "$work/busybox.tar" >/dev/null

wrap_user="setpriv --reuid=$uid --regid=$gid --clear-groups env -i HOME=$home USER=$user PATH=/usr/bin:/bin:/usr/sbin:/sbin XDG_RUNTIME_DIR=$work/xdg REGISTRIES_CONFIG_PATH=/nonexistent"
wrap_root="setpriv --reuid=0 --regid=0 --clear-groups env -i HOME=/root PATH=/usr/bin:/bin:/usr/sbin:/sbin REGISTRIES_CONFIG_PATH=/nonexistent"
podman="podman --root $work/u/podman-root --runroot $work/u/podman-run --storage-driver overlay --runtime runc"

# The user's pause process exists before timing starts (the first command makes it).
as_user $ub images >/dev/null

compare rootless-images "$runs" "$wrap_user $ub images" root "$wrap_root $rb images" -N --warmup 3
compare rootless-run "$runs" "$wrap_user $ub run --rm --network none localhost/busybox true" \
  podman "$wrap_user $podman run --rm --network none localhost/busybox true" -N --warmup 2
compare rootless-run-net "$runs" "$wrap_user $ub run --rm localhost/busybox true" \
  podman "$wrap_user $podman run --rm localhost/busybox true" -N --warmup 2

pause=$(cut -d' ' -f1 "$work/xdg/berth/pause.pid")
echo "pause process $pause: RSS $(ps -o rss= -p "$pause" | tr -d ' ') KiB" | tee -a "$bench_out/results.txt"
