#!/bin/sh
# Make each folder of the arguments a shared mount of the node: a bind
# mount onto itself where it is no mount point yet (as `ip netns` does for
# /run/netns), created where it is missing. Repeating it changes nothing.
for p; do
    mkdir -p "$p" || exit 1
    if ! awk -v p="$p" '$5 == p { found = 1 } END { exit !found }' /proc/self/mountinfo; then
        mount --bind "$p" "$p" || exit 1
    fi
    mount --make-shared "$p" || exit 1
done
