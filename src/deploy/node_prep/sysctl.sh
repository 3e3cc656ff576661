#!/bin/sh
# Write each KEY VALUE pair of the arguments (KEY as a path under
# /proc/sys, e.g. net/ipv4/tcp_migrate_req) into the host's /proc/sys.
while [ $# -gt 1 ]; do
    printf '%s\n' "$2" >"/proc/sys/$1" || exit 1
    shift 2
done
