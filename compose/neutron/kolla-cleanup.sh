#!/bin/bash
# What Neutron's agents made on the node outside their containers, removed
# by `kolla destroy` once every container there is stopped (each agent's
# x-kolla.cleanup runs this from its own image, with its privileges and
# binds):
#   namespaces PREFIX...  the network namespaces whose names start with a
#                         PREFIX (the DHCP agent's qdhcp-, the L3 agent's
#                         qrouter-, snat-, fip-); a veth pair whose end is
#                         inside goes with it
#   switch                the L2 agent's: the provider network's veth pair
#                         kolla-l2-agent.sh made, the switch's devices left
#                         in the node's namespace (the userspace datapath's
#                         taps, the kernel datapath itself), the flows the
#                         switch saved when it stopped, and Neutron's
#                         iptables rules and chains there
# Each thing removed is said; one that cannot be is said on stderr and the
# script goes on, failing at its end.
set -uo pipefail
# The loops over a pipe run in this shell, so their failures count.
shopt -s lastpipe
status=0
gone() { echo "removed $*"; }
failed() {
    echo "could not remove $*" >&2
    status=1
}

link_gone() { # DEVICE
    if ip link show "$1" >/dev/null 2>&1; then
        if ip link delete "$1"; then gone "link $1"; else failed "link $1"; fi
    fi
}

case "${1:-}" in
namespaces)
    shift
    [ $# -gt 0 ] || {
        echo "kolla-cleanup.sh: namespaces: give the prefixes" >&2
        exit 2
    }
    for namespace in $(ip netns list | awk '{print $1}'); do
        for prefix in "$@"; do
            case "$namespace" in
            "$prefix"*)
                if ip netns delete "$namespace"; then
                    gone "network namespace $namespace"
                else
                    failed "network namespace $namespace"
                fi
                ;;
            esac
        done
    done
    ;;
switch)
    link_gone kolla-ext
    # The kernel datapath takes its ports' devices with it; the userspace
    # datapath's are taps, each removed.
    if ip link show ovs-system >/dev/null 2>&1 && command -v ovs-dpctl >/dev/null; then
        if ovs-dpctl del-dp system@ovs-system; then gone "datapath ovs-system"; else failed "datapath ovs-system"; fi
    fi
    for device in br-int br-ex br-tun ovs-netdev; do
        link_gone "$device"
    done
    # The flows ovs-vswitchd saved when destroy stopped it (its start script
    # restores them on a restart; OVS_RUNDIR is Open vSwitch's variable).
    saved=${OVS_RUNDIR:-/run/openvswitch}/kolla-saved-flows
    if [ -e "$saved" ]; then
        if rm -rf "$saved"; then gone "the switch's saved flows"; else failed "$saved"; fi
    fi
    for table in filter nat mangle raw; do
        # The jumps into Neutron's chains from the node's own (a chain in
        # use cannot go; rules inside Neutron's go with their chain), then
        # the chains. xargs reads a rule's quotes as iptables wrote them.
        iptables -t "$table" -S 2>/dev/null | grep -E '^-A [^ ]+ .*neutron' | grep -v '^-A neutron' |
            while read -r rule; do
                if printf '%s\n' "${rule/#-A/-D}" | xargs iptables -t "$table"; then
                    gone "iptables rule $table $rule"
                else
                    failed "iptables rule $table $rule"
                fi
            done
        for chain in $(iptables -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^neutron/ {print $2}'); do
            if iptables -t "$table" -F "$chain" && iptables -t "$table" -X "$chain"; then
                gone "iptables chain $table $chain"
            else
                failed "iptables chain $table $chain"
            fi
        done
    done
    ;;
*)
    echo "kolla-cleanup.sh: say namespaces PREFIX... or switch" >&2
    exit 2
    ;;
esac
exit $status
