#!/bin/bash
# The L2 agent's start: the provider network's interface (physnet1) as the
# port of Open vSwitch's br-ex, then the agent. NEUTRON_EXTERNAL_INTERFACE names a spare
# interface of the node (nothing else may use it: its traffic becomes the
# provider network's). Left empty, as on the all-in-one, the node gets a
# veth pair instead: `kolla-ext` for Neutron and `kolla-ext-gw`, the node's
# own end (give it an address of the provider subnet to reach floating IPs
# from the node).
set -euo pipefail
# The switch's datapath, in $datapath (kolla-datapath.sh, beside this script).
. "$(dirname "${BASH_SOURCE[0]}")/kolla-datapath.sh"
# A name the kernel takes, that `ip` cannot read as an option and an ini
# line cannot be broken by.
check_name() { # VARIABLE VALUE
    if ! [[ "$2" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$ ]]; then
        echo "{{ service_name }}: $1=${2@Q} is not an interface name" >&2
        exit 1
    fi
}
check_exists() { # VARIABLE VALUE WHAT
    if ! ip link show "$2" >/dev/null 2>&1; then
        echo "{{ service_name }}: the $3 interface $2 ($1) does not exist on node {{ node_name }}" >&2
        exit 1
    fi
}
# NEUTRON_TUNNEL_INTERFACE: the interface VXLAN to other nodes leaves by
# (its IPv4 address is this node's tunnel end); unset, the node's
# api_address is.
tunnel="${NEUTRON_TUNNEL_INTERFACE:-}"
[ -z "$tunnel" ] || check_name NEUTRON_TUNNEL_INTERFACE "$tunnel"
interface="${NEUTRON_EXTERNAL_INTERFACE:-}"
[ -z "$interface" ] || check_name NEUTRON_EXTERNAL_INTERFACE "$interface"
[ -z "$tunnel" ] || check_exists NEUTRON_TUNNEL_INTERFACE "$tunnel" tunnel
if [ -z "$interface" ]; then
    interface=kolla-ext
    if ! ip link show kolla-ext >/dev/null 2>&1; then
        ip link add kolla-ext type veth peer name kolla-ext-gw
    fi
    ip link set kolla-ext up
    ip link set kolla-ext-gw up
else
    check_exists NEUTRON_EXTERNAL_INTERFACE "$interface" provider
fi
# The first IPv4 address of an interface, with its prefix length.
address_of() { # INTERFACE
    ip -4 -o addr show dev "$1" | awk '{ print $4; exit }'
}
# This node's tunnel end: the tunnel interface's address, as it is found on
# INTERFACE (the tunnel interface, or the bridge it moved to).
tunnel_end() { # INTERFACE
    local address
    address=$(address_of "$1")
    if [ -z "$address" ]; then
        echo "{{ service_name }}: the tunnel interface $tunnel (NEUTRON_TUNNEL_INTERFACE) has no IPv4 address on node {{ node_name }}" >&2
        exit 1
    fi
    echo "${address%/*}"
}
# The provider bridge must exist before the agent starts (it maps physnet1
# to it); its port is the provider interface.
ovs-vsctl --timeout=60 --may-exist add-br br-ex \
    -- set bridge br-ex datapath_type="$datapath" \
    -- --may-exist add-port br-ex "$interface"
printf '[ovs]\nbridge_mappings = physnet1:br-ex\ndatapath_type = %s\n' "$datapath" \
    > /etc/neutron/plugins/ml2/physnets.ini
if [ -n "$tunnel" ]; then
    if [ "$datapath" = netdev ]; then
        # Userspace tunnels leave by an Open vSwitch bridge that holds the
        # tunnel address (Open vSwitch's own routing): the interface
        # becomes the port of br-phy, and its address moves there (once;
        # a restart finds it on br-phy).
        ovs-vsctl --timeout=60 --may-exist add-br br-phy \
            -- set bridge br-phy datapath_type=netdev \
            -- --may-exist add-port br-phy "$tunnel"
        for _ in $(seq 1 100); do
            ip link show br-phy >/dev/null 2>&1 && break
            sleep 0.1
        done
        moving=$(address_of "$tunnel")
        if [ -n "$moving" ]; then
            ip addr del "$moving" dev "$tunnel"
            ip addr replace "$moving" dev br-phy
        fi
        ip link set br-phy up
        local_ip=$(tunnel_end br-phy)
    else
        local_ip=$(tunnel_end "$tunnel")
    fi
    printf 'local_ip = %s\n' "$local_ip" >> /etc/neutron/plugins/ml2/physnets.ini
elif [ "$datapath" = netdev ]; then
    echo "{{ service_name }}: userspace datapath and no NEUTRON_TUNNEL_INTERFACE: VXLAN to other nodes cannot leave this node (set it to a spare interface with an address)"
fi
exec neutron-openvswitch-agent --config-file /etc/neutron/neutron.conf \
    --config-file /etc/neutron/plugins/ml2/openvswitch_agent.ini \
    --config-file /etc/neutron/plugins/ml2/physnets.ini
