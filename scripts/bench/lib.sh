# Shared by the benchmark scripts in this folder; source it, don't run it.
#
# compare NAME RUNS BERTH_CMD PEER_NAME PEER_CMD [hyperfine options...]
#   times berth's command and its peer's in one hyperfine run, then prints one line:
#   NAME: berth MEDIAN ms, PEER MEDIAN ms, ratio berth/peer R
#   and appends it to target/bench/results.txt. The raw JSON is kept beside it.

bench_out=${BENCH_OUT:-target/bench}
mkdir -p "$bench_out"

compare() {
  local name=$1 runs=$2 berth_cmd=$3 peer_name=$4 peer_cmd=$5
  shift 5
  local json="$bench_out/$name.json"
  hyperfine --style basic --runs "$runs" --export-json "$json" "$@" \
    -n berth "$berth_cmd" -n "$peer_name" "$peer_cmd" >&2
  local line
  line=$(jq -r --arg name "$name" --arg peer "$peer_name" '
    (.results[0].median * 1000) as $b | (.results[1].median * 1000) as $p |
    "\($name): berth \($b * 100 | round / 100) ms, \($peer) \($p * 100 | round / 100) ms, " +
    "ratio berth/\($peer) \($b / $p * 1000 | round / 1000)"' "$json")
  echo "$line" | tee -a "$bench_out/results.txt"
}
