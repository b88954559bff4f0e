#!/usr/bin/env bash
# Real Hadoop client jars for the WebHDFS gateway's tests and benchmarks (docs/hdfs.md), resolved by
# Maven from test/hadoop/pom.xml into a cache outside git keyed by the pom's hash, plus the small
# Java test driver compiled against them. Idempotent: a cached run only hashes two files.
# Prints nothing when cached; `--print` prints the classpath directory (jars/ and classes/ under it).
set -euo pipefail
cd "$(dirname "$0")/.."
pom=test/hadoop/pom.xml
key=$(cat "$pom" test/hadoop/src/*.java | sha256sum | cut -c1-16)
dir=${LIVEMR_HADOOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/livemr}/hadoop-$key
log() { printf '[hadoop] %s\n' "$*" >&2; }

if [[ ! -f "$dir/.done" ]]; then
  command -v mvn >/dev/null && command -v javac >/dev/null || { log "mvn and javac are needed (scripts/apt-packages.txt)"; exit 1; }
  tmp=$(mktemp -d "${dir}.tmp.XXXXXX" 2>/dev/null || { mkdir -p "$(dirname "$dir")"; mktemp -d "${dir}.tmp.XXXXXX"; })
  trap 'rm -rf "$tmp"' EXIT
  log "resolving Hadoop client jars with Maven into $dir (first run: a few minutes)"
  mvn -B -q -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DoutputDirectory="$tmp/jars" -DincludeScope=runtime >&2
  mkdir -p "$tmp/classes"
  javac -nowarn -d "$tmp/classes" -cp "$tmp/jars/*" test/hadoop/src/*.java >&2
  touch "$tmp/.done"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  trap - EXIT
  # older caches (other pom / driver versions)
  for old in "$(dirname "$dir")"/hadoop-*; do [[ "$old" != "$dir" && -d "$old" ]] && rm -rf "$old"; done
fi
[[ "${1:-}" == --print ]] && echo "$dir"
exit 0
