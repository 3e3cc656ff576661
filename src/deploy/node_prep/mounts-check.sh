#!/bin/sh
# Print, for each folder of the arguments, `shared PATH`, `private PATH` (a
# mount point, not shared) or `none PATH` (no mount point, or missing).
for p; do
    awk -v p="$p" '
        $5 == p {
            state = "private"
            for (i = 7; $i != "-"; i++) if ($i ~ /^shared:/) state = "shared"
        }
        END { print (state ? state : "none") " " p }
    ' /proc/self/mountinfo
done
