#!/bin/sh
# Runtime start-up, side by side: `run` of a busybox bundle whose process is /bin/true
# (create -> start -> wait -> delete in one command), berth-oci against runc, in one hyperfine
# run. Prints both medians and their ratio; the goal is berth-oci <= 1/4 of runc.
#
#   scripts/bench/runtime.sh [ROUNDS]     (as root; default 50 rounds, at least 30)
#
# Needs: hyperfine, runc, busybox-static, jq (Debian packages), and cargo for the release build
# of berth-oci and berth-fixture.
set -eu

ROUNDS=${1:-50}
[ "$ROUNDS" -ge 30 ] || { echo "runtime.sh: use at least 30 rounds" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "runtime.sh: run as root (both runtimes run rootful)" >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release -p berth-oci -p berth-testkit --bin berth-oci --bin berth-fixture \
    --manifest-path "$REPO/Cargo.toml" >&2
TARGET=$(cargo metadata --format-version 1 --no-deps --manifest-path "$REPO/Cargo.toml" \
    | jq -r .target_directory)
BERTH=$TARGET/release/berth-oci

WORK=$(mktemp -d /var/tmp/berth-bench-runtime.XXXXXX)
trap 'runc --root "$WORK/runc-state" delete -f bench-runc >/dev/null 2>&1 || true
      "$BERTH" --root "$WORK/berth-state" delete -f bench-berth >/dev/null 2>&1 || true
      rm -rf "$WORK"' EXIT

# The tests' busybox root file system (the static binary, its applet links, /etc/passwd).
BUNDLE=$WORK/bundle
"$TARGET/release/berth-fixture" busybox-rootfs "$BUNDLE/rootfs"

# runc's own example config, with /bin/true and no terminal: the same file for both.
(cd "$BUNDLE" && runc spec)
jq '.process.terminal = false | .process.args = ["/bin/true"]' "$BUNDLE/config.json" \
    > "$BUNDLE/config.json.new"
mv "$BUNDLE/config.json.new" "$BUNDLE/config.json"

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
