#!/bin/sh
# livemr-guest: the consent CLI (requests, grant, deny, share, unshare) and the daemon, on the
# system's Node (>= 18). See /usr/share/doc/livemr-guest/README.
exec /usr/bin/node /usr/lib/livemr-guest/livemr-guest.mjs "$@"
