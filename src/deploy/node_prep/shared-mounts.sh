#!/bin/sh
# Make each folder of the arguments a shared mount of the node: a bind
# mount onto itself where it is no mount point yet (as `ip netns` does for
# /run/netns), created where it is missing. Repeating it changes nothing.
# Two binds at once (two runs preparing the node together) stack a second
# mount on the first: the engine reads the lowest one's propagation while
# --make-shared reaches only the top one, so stacked mounts are taken off
# until one is left. mountinfo writes a space, tab, newline or backslash
# in a path as an octal escape: the path is compared unescaped (and
# reaches awk through the environment, which, unlike -v, leaves its
# backslashes alone).
mounts_at() {
    KOLLA_PATH="$1" awk '
        BEGIN { p = ENVIRON["KOLLA_PATH"] }
        function unescaped(s) {
            gsub(/\\040/, " ", s); gsub(/\\011/, "\t", s); gsub(/\\012/, "\n", s)
            gsub(/\\134/, "\\", s)
            return s
        }
        unescaped($5) == p { n++ }
        END { print n + 0 }
    ' /proc/self/mountinfo
}
for p; do
    mkdir -p "$p" || exit 1
    while :; do
        n=$(mounts_at "$p")
        if [ "$n" -eq 0 ]; then
            mount --bind "$p" "$p" || exit 1
        elif [ "$n" -gt 1 ]; then
            umount "$p" || {
                echo "$p: $n mounts stacked there and the top one is busy; unmount all but one" >&2
                exit 1
            }
        else
            break
        fi
    done
    mount --make-shared "$p" || exit 1
done
