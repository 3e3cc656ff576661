# Sourced by the Neutron agents' start scripts: the switch's datapath, in
# $datapath. The kernel's (the openvswitch module) where the node has it,
# else Open vSwitch's userspace one (slower; for nodes whose kernel lacks
# the module). NEUTRON_OVS_DATAPATH=system|netdev decides. The L2 agent
# makes the bridges of that datapath; the DHCP and L3 agents plug their
# namespaces in the way that survives a restart of ovs-vswitchd on it.
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
