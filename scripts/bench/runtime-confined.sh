#!/bin/sh
# Runtime start-up with confinement, side by side: scripts/bench/runtime.sh's `run` of a
# busybox bundle running /bin/true (create -> start -> wait -> delete), with a memory limit,
# a pids limit and the default seccomp profile in the config, berth-oci against runc in one
# hyperfine run. Prints both medians and their ratio; the goal is berth-oci <= 1/4 of runc.
#
#   scripts/bench/runtime-confined.sh [ROUNDS]     (as root; default 50 rounds, at least 30)
#
# The seccomp profile is containers-common's /usr/share/containers/seccomp.json (what Podman
# applies), resolved here with jq for the config's capabilities on amd64 as Podman resolves
# it, so both runtimes get the same linux.seccomp. berth-oci keeps the compiled filter in its
# state root (seccomp::compile_cached); runc compiles it on every create.
#
# Needs: hyperfine, runc, busybox-static, jq, containers-common (Debian packages), and cargo
# for the release build.
set -eu

ROUNDS=${1:-50}
[ "$ROUNDS" -ge 30 ] || { echo "runtime-confined.sh: use at least 30 rounds" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "runtime-confined.sh: run as root (both runtimes run rootful)" >&2; exit 2; }
PROFILE=/usr/share/containers/seccomp.json
[ -r "$PROFILE" ] || { echo "runtime-confined.sh: $PROFILE missing (Debian: containers-common)" >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release -p berth-oci --manifest-path "$REPO/Cargo.toml" >&2
BERTH=$(cargo metadata --format-version 1 --no-deps --manifest-path "$REPO/Cargo.toml" \
    | jq -r .target_directory)/release/berth-oci

WORK=$(mktemp -d /var/tmp/berth-bench-confined.XXXXXX)
trap 'runc --root "$WORK/runc-state" delete -f bench-runc >/dev/null 2>&1 || true
      "$BERTH" --root "$WORK/berth-state" delete -f bench-berth >/dev/null 2>&1 || true
      rm -rf "$WORK"' EXIT

# A busybox root file system: the static binary and its applet links.
BUNDLE=$WORK/bundle
mkdir -p "$BUNDLE/rootfs/bin" "$BUNDLE/rootfs/proc" "$BUNDLE/rootfs/sys" "$BUNDLE/rootfs/dev" \
    "$BUNDLE/rootfs/tmp" "$BUNDLE/rootfs/etc"
cp /bin/busybox "$BUNDLE/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$BUNDLE/rootfs/bin/$applet"
done

# runc's example config with /bin/true, 64 MiB of memory, 32 pids and the seccomp profile
# resolved for the config's bounding set: a rule applies when its included capabilities are
# all held and its arches (if any) name amd64, unless an excluded capability is held.
(cd "$BUNDLE" && runc spec)
jq --slurpfile profile "$PROFILE" '
  .process.capabilities.bounding as $caps
  | ($profile[0]) as $p
  | def holds: . as $c | $caps | index($c) != null;
  .process.terminal = false
  | .process.args = ["/bin/true"]
  | .linux.resources.memory = {"limit": 67108864}
  | .linux.resources.pids = {"limit": 32}
  | .linux.seccomp = {
      defaultAction: $p.defaultAction,
      defaultErrnoRet: $p.defaultErrnoRet,
      architectures: ($p.archMap[] | select(.architecture == "SCMP_ARCH_X86_64")
                      | [.architecture] + .subArchitectures),
      syscalls: [$p.syscalls[]
        | select(all((.includes.caps // [])[]; holds))
        | select((.includes.arches // []) | length == 0 or index("amd64") != null)
        | select(any((.excludes.caps // [])[]; holds) | not)
        | select((.excludes.arches // []) | index("amd64") == null)
        | {names, action} + (if .errnoRet then {errnoRet} else {} end)
          + (if .args then {args} else {} end)]
    }
' "$BUNDLE/config.json" > "$BUNDLE/config.json.new"
mv "$BUNDLE/config.json.new" "$BUNDLE/config.json"
echo "runtime-confined.sh: $(jq '.linux.seccomp.syscalls | length' "$BUNDLE/config.json") seccomp rules, memory 64 MiB, pids 32" >&2

hyperfine -N --warmup 5 --runs "$ROUNDS" --export-json "$WORK/result.json" \
    -n runc "runc --root $WORK/runc-state run --bundle $BUNDLE bench-runc" \
    -n berth-oci "$BERTH --root $WORK/berth-state run --bundle $BUNDLE bench-berth"

jq -r '
  (.results[] | select(.command == "runc") | .median) as $runc
  | (.results[] | select(.command == "berth-oci") | .median) as $berth
  | "median runc:      \($runc * 1000 | . * 100 | round / 100) ms",
    "median berth-oci: \($berth * 1000 | . * 100 | round / 100) ms",
    "ratio berth-oci/runc: \($berth / $runc | . * 1000 | round / 1000) (goal <= 0.25)"
' "$WORK/result.json"
