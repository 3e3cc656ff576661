#!/bin/bash
# The L2 agent's start: the provider network's interface (physnet1), then
# the agent (Zed: the Linux bridge agent; Epoxy: Open vSwitch's, the Linux
# bridge one being gone upstream). NEUTRON_EXTERNAL_INTERFACE names a spare
# interface of the node (nothing else may use it: its traffic becomes the
# provider network's). Left empty, as on the all-in-one, the node gets a
# veth pair instead: `kolla-ext` for Neutron and `kolla-ext-gw`, the node's
# own end (give it an address of the provider subnet to reach floating IPs
# from the node).
set -euo pipefail
{%- if openstack_release != "zed" %}
# The switch's datapath: the kernel's (the openvswitch module) where the
# node has it, else Open vSwitch's userspace one (slower; for nodes whose
# kernel lacks the module). NEUTRON_OVS_DATAPATH=system|netdev decides.
datapath="${NEUTRON_OVS_DATAPATH:-auto}"
case "$datapath" in
auto)
    datapath=netdev
    [ -d /sys/module/openvswitch ] && datapath=system
    echo "{{ service_name }}: the $datapath datapath (the kernel's openvswitch module is $([ "$datapath" = system ] || echo "not ")loaded)"
    ;;
system | netdev) ;;
*)
    echo "{{ service_name }}: NEUTRON_OVS_DATAPATH=${datapath@Q}: say system, netdev or auto" >&2
    exit 1
    ;;
esac
{%- endif %}
interface="${NEUTRON_EXTERNAL_INTERFACE:-}"
if [ -z "$interface" ]; then
    interface=kolla-ext
    if ! ip link show kolla-ext >/dev/null 2>&1; then
        ip link add kolla-ext type veth peer name kolla-ext-gw
    fi
    ip link set kolla-ext up
    ip link set kolla-ext-gw up
# A name the kernel takes, that `ip` cannot read as an option and an ini
# line cannot be broken by.
elif ! [[ "$interface" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$ ]]; then
    echo "{{ service_name }}: NEUTRON_EXTERNAL_INTERFACE=${interface@Q} is not an interface name" >&2
    exit 1
elif ! ip link show "$interface" >/dev/null 2>&1; then
    echo "{{ service_name }}: the provider interface $interface (NEUTRON_EXTERNAL_INTERFACE) does not exist on node {{ node_name }}" >&2
    exit 1
fi
{%- if openstack_release == "zed" %}
printf '[linux_bridge]\nphysical_interface_mappings = physnet1:%s\n' "$interface" \
    > /etc/neutron/plugins/ml2/physnets.ini
exec neutron-linuxbridge-agent --config-file /etc/neutron/neutron.conf \
    --config-file /etc/neutron/plugins/ml2/linuxbridge_agent.ini \
    --config-file /etc/neutron/plugins/ml2/physnets.ini
{%- else %}
# The provider bridge must exist before the agent starts (it maps physnet1
# to it); its port is the provider interface.
ovs-vsctl --timeout=60 --may-exist add-br br-ex \
    -- set bridge br-ex datapath_type="$datapath" \
    -- --may-exist add-port br-ex "$interface"
printf '[ovs]\nbridge_mappings = physnet1:br-ex\ndatapath_type = %s\n' "$datapath" \
    > /etc/neutron/plugins/ml2/physnets.ini
exec neutron-openvswitch-agent --config-file /etc/neutron/neutron.conf \
    --config-file /etc/neutron/plugins/ml2/openvswitch_agent.ini \
    --config-file /etc/neutron/plugins/ml2/physnets.ini
{%- endif %}
