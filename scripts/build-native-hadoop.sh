#!/usr/bin/env bash
# Real Hadoop jars for the WebHDFS gateway's tests and benchmarks (docs/hdfs.md), resolved by Maven
# into a cache outside git keyed by the pom's hash, plus small Java test drivers compiled against them.
#   client  (default) test/hadoop/pom.xml: hadoop-client + examples; drivers test/hadoop/src/*.java
#   cluster test/hadoop/cluster/pom.xml: MiniDFSCluster + MiniMRYarnCluster (hadoop-minicluster),
#           examples, distcp; driver test/hadoop/cluster/src/*.java (test/hadoop/cluster.ts runs it)
#   spark   test/hadoop/spark/pom.xml: spark-sql (local[2]); driver test/hadoop/spark/src/SparkCheck.java
#   provided test/hadoop/provided/pom.xml: NameNode + DataNode (hadoop-hdfs) and fs2img; driver
#           test/hadoop/provided/src/ProvidedHdfs.java (test/hadoop/provided.ts runs it)
# Idempotent: a cached run only hashes a few files. Prints nothing when cached; `--print` prints the
# cache directory (conf/, classes/, jars/ under it).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[hadoop] %s\n' "$*" >&2; }
profile=client
print=0
for a in "$@"; do
  case $a in
    --print) print=1 ;;
    client | cluster | spark | provided) profile=$a ;;
    *) log "usage: $0 [--print] [client|cluster|spark|provided]"; exit 2 ;;
  esac
done
if [[ $profile == client ]]; then pom=test/hadoop/pom.xml src=test/hadoop/src name=hadoop
else pom=test/hadoop/$profile/pom.xml src=test/hadoop/$profile/src name=hadoop-$profile; fi
key=$(cat "$pom" "$src"/*.java | sha256sum | cut -c1-16)
base=${LIVEMR_HADOOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/livemr}
dir=$base/$name-$key

if [[ ! -f "$dir/.done" ]]; then
  command -v mvn >/dev/null && command -v javac >/dev/null || { log "mvn and javac are needed (scripts/apt-packages.txt)"; exit 1; }
  mkdir -p "$base"
  tmp=$(mktemp -d "${dir}.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  log "resolving Hadoop $profile jars with Maven into $dir (first run: a few minutes)"
  if ! mvn -B -q -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DoutputDirectory="$tmp/jars" \
      -DincludeScope=runtime >"$tmp/mvn.log" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$tmp/mvn.log" >&2
    log "maven failed"
    exit 1
  fi
  rm -f "$tmp/mvn.log"
  mkdir -p "$tmp/classes"
  javac -nowarn -d "$tmp/classes" -cp "$tmp/jars/*" "$src"/*.java >&2
  touch "$tmp/.done"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  trap - EXIT
  # older caches of this profile (other pom / driver versions)
  for old in "$base/$name"-*; do
    if [[ "$old" != "$dir" && -d "$old" && "$(basename "$old")" =~ ^$name-[0-9a-f]{16}$ ]]; then rm -rf "$old"; fi
  done
fi
# a client configuration directory, as $HADOOP_CONF_DIR would be on a Hadoop install: FsShell.main
# insists on core-site.xml, and log4j wants a configuration
if [[ ! -f "$dir/conf/log4j.properties" ]]; then
  mkdir -p "$dir/conf"
  printf '<?xml version="1.0"?>\n<configuration/>\n' > "$dir/conf/core-site.xml"
  printf 'log4j.rootLogger=WARN,stderr\nlog4j.appender.stderr=org.apache.log4j.ConsoleAppender\nlog4j.appender.stderr.Target=System.err\nlog4j.appender.stderr.layout=org.apache.log4j.PatternLayout\nlog4j.appender.stderr.layout.ConversionPattern=%%p %%c{1}: %%m%%n\n' > "$dir/conf/log4j.properties"
fi
[[ $print == 1 ]] && echo "$dir"
exit 0
