# Sourced by scripts/build-native-*.sh: sets node_inc to the directory holding node_api.h, from the
# running node's prefix or the usual system places (never downloads headers). Needs a `die` function.
node_inc=${LIVEMR_NODE_INCLUDE:-}
if [[ -z $node_inc ]]; then
  for d in "$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")/include/node" /usr/include/node /usr/local/include/node; do
    [[ -f $d/node_api.h ]] && { node_inc=$d; break; }
  done
fi
[[ -n $node_inc && -f $node_inc/node_api.h ]] ||
  die "Node headers (node_api.h) not found in <node prefix>/include/node, /usr/include/node or /usr/local/include/node: with Debian's nodejs, apt-get install libnode-dev (NodeSource's nodejs ships them); or set LIVEMR_NODE_INCLUDE (no download is attempted)"
