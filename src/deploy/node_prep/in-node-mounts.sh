#!/bin/sh
# Run the script given as the first argument, with the other arguments, by
# the node's own sh in the node's mount namespace: its engine's, since
# PID 1 may refuse even root a look at its namespaces (some VM and sandbox
# inits do). The engine is the dockerd in this container's PID namespace
# (the host's), not one of a Docker-in-Docker container's, which the
# host's namespace shows too; PID 1 when there is none.
script=$1
shift
self_ns=$(readlink /proc/self/ns/pid)
target=1
for d in /proc/[0-9]*; do
    [ "$(cat "$d/comm" 2>/dev/null)" = dockerd ] || continue
    [ "$(readlink "$d/ns/pid" 2>/dev/null)" = "$self_ns" ] || continue
    target=${d#/proc/}
    break
done
exec nsenter -t "$target" -m -- sh -c "$script" sh "$@"
