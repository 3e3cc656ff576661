#!/bin/sh
# Print, for each folder of the arguments, `shared PATH`, `private PATH` (a
# mount point, not shared) or `none PATH` (no mount point, or missing).
# Of mounts stacked at one path, the lowest one decides, as it does for the
# engine. mountinfo writes a space, tab, newline or backslash in a path as an
# octal escape: the path is compared unescaped (and reaches awk through
# the environment, which, unlike -v, leaves its backslashes alone).
for p; do
    KOLLA_PATH="$p" awk '
        BEGIN { p = ENVIRON["KOLLA_PATH"] }
        function unescaped(s) {
            gsub(/\\040/, " ", s); gsub(/\\011/, "\t", s); gsub(/\\012/, "\n", s)
            gsub(/\\134/, "\\", s)
            return s
        }
        !state && unescaped($5) == p {
            state = "private"
            for (i = 7; $i != "-"; i++) if ($i ~ /^shared:/) state = "shared"
        }
        END { print (state ? state : "none") " " p }
    ' /proc/self/mountinfo
done
