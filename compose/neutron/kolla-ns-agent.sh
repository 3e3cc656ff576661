#!/bin/bash
# The start of the agents whose ports live in network namespaces (DHCP,
# L3): the agent's command line, given as arguments, and a setting that
# follows the switch's datapath.
#
# On the userspace datapath an Open vSwitch internal port is a tap device
# that ovs-vswitchd holds open; moved into a router's or a DHCP server's
# namespace, it is orphaned there when ovs-vswitchd restarts (an upgrade
# of it), and the new ovs-vswitchd makes a tap of the same name outside
# the namespace: the router and the DHCP server go dark for good, and an
# agent's resync finds its device in place and changes nothing. A veth pair
# (ovs_use_veth) keeps the namespace's end a kernel device, whose other end
# the new ovs-vswitchd opens again: traffic resumes once its flows are back.
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
. "$here/kolla-datapath.sh"
veth=false
[ "$datapath" = netdev ] && veth=true
printf '[DEFAULT]\novs_use_veth = %s\n' "$veth" > "$here/datapath.ini"
exec "$@" --config-file "$here/datapath.ini"
