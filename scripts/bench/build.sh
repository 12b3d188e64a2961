#!/bin/sh
# Builds, side by side with `podman build --layers` (runc, cgroupfs, vfs-free overlay storage,
# the same RUN network for both: NET=host by default, NET=default for each tool's own
# default, which is a network namespace of the step's own), in one hyperfine run each, on the same busybox image and the
# same app context (a shell-script app shaped as the issue's Python app: user, dependency
# list copied and "installed" by a RUN, source last, USER, EXPOSE, exec-form ENTRYPOINT):
#   1. the rebuild after a source-only change   (goal: berth <= 1/10 of podman)
#   2. the cold build, cache emptied each round (goal: berth <= 1/3 of podman)
#
#   scripts/bench/build.sh [ROUNDS]     (as root; default 10 rounds, at least 5)
#
# Needs: hyperfine, podman, runc, conmon, skopeo, jq, busybox-static (Debian packages) and
# cargo for the release build of berth and berth-fixture. Podman gets a throwaway --root and
# --runroot; the image goes in with `skopeo copy oci:DIR:latest containers-storage:...`.
set -eu
# The RUN network of both tools: host (the default here) or each tool's own default.
NET=${NET:-host}
if [ "$NET" = default ]; then NETFLAG=""; else NETFLAG="--network $NET"; fi

ROUNDS=${1:-10}
[ "$ROUNDS" -ge 5 ] || { echo "build.sh: use at least 5 rounds" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "build.sh: run as root" >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/../.." && pwd)
# PROFILE=debug times the debug build instead (when a release build cannot be had).
PROFILE=${PROFILE:-release}
# SKIP_BUILD=1 times the release binaries already in the target directory.
if [ "$PROFILE" = release ] && [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release -p berth -p berth-testkit --bin berth --bin berth-monitor --bin berth-fixture \
        --manifest-path "$REPO/Cargo.toml" >&2
fi
TARGET=$(cargo metadata --format-version 1 --no-deps --manifest-path "$REPO/Cargo.toml" \
    | jq -r .target_directory)/$PROFILE

WORK=$(mktemp -d /var/tmp/berth-bench-build.XXXXXX)
B="$TARGET/berth --root $WORK/berth --runroot $WORK/berth-run"
P="podman --root $WORK/podman --runroot $WORK/podman-run --runtime runc \
--cgroup-manager cgroupfs --events-backend file --storage-driver overlay"
cleanup() {
    $P system reset -f >/dev/null 2>&1 || true
    umount -R "$WORK/podman" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$TARGET/berth-fixture" busybox-layout "$WORK/layout" >/dev/null
$B load -i "$WORK/layout" >/dev/null
$B tag "$($B images -q | head -n 1)" localhost/busybox:latest
skopeo copy --quiet "oci:$WORK/layout:latest" \
    "containers-storage:[overlay@$WORK/podman+$WORK/podman-run]localhost/busybox:latest"

CTX="$WORK/context"
mkdir -p "$CTX/src"
cat > "$CTX/Containerfile" <<'DOCKERFILE'
FROM localhost/busybox:latest
RUN echo 'app:x:1001:1001::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1001:' >> /etc/group && mkdir -p /home/app && chown 1001:1001 /home/app
WORKDIR /app
COPY requirements.txt .
RUN mkdir -p /opt/deps && for d in $(cat requirements.txt); do echo "$d" > /opt/deps/$d; done
COPY src/ ./src/
USER app
EXPOSE 8000
ENTRYPOINT ["/bin/sh", "/app/src/main.sh"]
DOCKERFILE
echo "liba libb libc" > "$CTX/requirements.txt"
i=0
while [ $i -lt 50 ]; do echo "echo module $i" > "$CTX/src/mod$i.sh"; i=$((i + 1)); done
echo 'echo hello' > "$CTX/src/main.sh"
# Each round changes the source only, so every rebuild reuses all layers before its COPY.
TOUCH="sh -c 'date +%s%N > $CTX/src/version.txt'"

summary() {
    jq -r --arg what "$1" '
      (.results[0].median * 1000) as $b | (.results[1].median * 1000) as $p |
      "\($what): berth \($b * 100 | round / 100) ms, podman \($p * 100 | round / 100) ms, " +
      "ratio berth/podman \($b / $p * 1000 | round / 1000)"' "$2"
}

# Warm both caches once.
$B build -q $NETFLAG -t app "$CTX" >/dev/null
$P build -q --layers $NETFLAG -t app "$CTX" >/dev/null

echo "== 1. rebuild after a source-only change" >&2
hyperfine -N --runs "$ROUNDS" --export-json "$WORK/rebuild.json" \
    --prepare "$TOUCH" -n berth "$B build -q $NETFLAG -t app $CTX" \
    --prepare "$TOUCH" -n podman "$P build -q --layers $NETFLAG -t app $CTX" >&2

echo "== 2. cold build (cache and image removed before each round)" >&2
hyperfine -N --runs "$ROUNDS" --export-json "$WORK/cold.json" \
    --prepare "sh -c '$B rmi -f app >/dev/null 2>&1; rm -rf $WORK/berth/build/cache'" \
    -n berth "$B build -q $NETFLAG -t app $CTX" \
    --prepare "sh -c '$P rmi -af >/dev/null 2>&1; skopeo copy --quiet oci:$WORK/layout:latest containers-storage:[overlay@$WORK/podman+$WORK/podman-run]localhost/busybox:latest'" \
    -n podman "$P build -q --layers $NETFLAG -t app $CTX" >&2

summary "rebuild after a source-only change" "$WORK/rebuild.json"
summary "cold build" "$WORK/cold.json"
