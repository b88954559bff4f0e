#!/usr/bin/env bash
# Real Hadoop client jars for the WebHDFS gateway's tests and benchmarks (docs/hdfs.md), resolved by
# Maven from test/hadoop/pom.xml into a cache outside git keyed by the pom's hash, plus the small
# Java test driver compiled against them. Idempotent: a cached run only hashes two files.
# Prints nothing when cached; `--print` prints the cache directory (conf/, classes/, jars/ under it).
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
  if ! mvn -B -q -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DoutputDirectory="$tmp/jars" \
      -DincludeScope=runtime >"$tmp/mvn.log" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$tmp/mvn.log" >&2
    log "maven failed"
    exit 1
  fi
  rm -f "$tmp/mvn.log"
  mkdir -p "$tmp/classes"
  javac -nowarn -d "$tmp/classes" -cp "$tmp/jars/*" test/hadoop/src/*.java >&2
  touch "$tmp/.done"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  trap - EXIT
  # older caches (other pom / driver versions)
  for old in "$(dirname "$dir")"/hadoop-*; do if [[ "$old" != "$dir" && -d "$old" ]]; then rm -rf "$old"; fi; done
fi
# a client configuration directory, as $HADOOP_CONF_DIR would be on a Hadoop install: FsShell.main
# insists on core-site.xml, and log4j wants a configuration
if [[ ! -f "$dir/conf/log4j.properties" ]]; then
  mkdir -p "$dir/conf"
  printf '<?xml version="1.0"?>\n<configuration/>\n' > "$dir/conf/core-site.xml"
  printf 'log4j.rootLogger=WARN,stderr\nlog4j.appender.stderr=org.apache.log4j.ConsoleAppender\nlog4j.appender.stderr.Target=System.err\nlog4j.appender.stderr.layout=org.apache.log4j.PatternLayout\nlog4j.appender.stderr.layout.ConversionPattern=%%p %%c{1}: %%m%%n\n' > "$dir/conf/log4j.properties"
fi
[[ "${1:-}" == --print ]] && echo "$dir"
exit 0
