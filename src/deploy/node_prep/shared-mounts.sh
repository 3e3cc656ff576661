#!/bin/sh
# Make each folder of the arguments a shared mount of the node: a bind
# mount onto itself where it is no mount point yet (as `ip netns` does for
# /run/netns), created where it is missing. Repeating it changes nothing.
# mountinfo writes a space, tab, newline or backslash in a path as an
# octal escape: the path is compared unescaped (and reaches awk through
# the environment, which, unlike -v, leaves its backslashes alone).
for p; do
    mkdir -p "$p" || exit 1
    if ! KOLLA_PATH="$p" awk '
        BEGIN { p = ENVIRON["KOLLA_PATH"] }
        function unescaped(s) {
            gsub(/\\040/, " ", s); gsub(/\\011/, "\t", s); gsub(/\\012/, "\n", s)
            gsub(/\\134/, "\\", s)
            return s
        }
        unescaped($5) == p { found = 1 }
        END { exit !found }
    ' /proc/self/mountinfo; then
        mount --bind "$p" "$p" || exit 1
    fi
    mount --make-shared "$p" || exit 1
done
