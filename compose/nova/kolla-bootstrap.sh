#!/bin/bash
# Nova's bootstrap job (run by nova-api): the API and cell databases, cell0
# and cell1, and nova's user, service and endpoints in Keystone. Every step
# is idempotent. Passwords travel in this file (mode 0700, owner nova),
# never on a command line. What does not wait on another step runs beside
# it (each nova-manage spends about 5 s importing Nova first): Keystone's
# part beside the schemas, cell0's mapping beside cell1's; the cells'
# schemas once both are mapped (`db sync` migrates cell0 too).
set -euo pipefail
{% if kolla_job -%}
{% if service_name == "nova-api" -%}
export OS_AUTH_URL=http://{{ internal_address }}:5000/v3 OS_USERNAME=admin OS_PROJECT_NAME=admin
export OS_PASSWORD={{ passwords.keystone_admin_password | shell }}
export KOLLA_SERVICE_PASSWORD={{ passwords.nova_keystone_password | shell }}
kolla_keystone_register --name nova --type compute --description "Compute service" \
    --user nova --url http://{{ api_address }}:8774/v2.1 &
register=$!
nova-manage api_db sync
nova-manage cell_v2 map_cell0 &
cell0=$!
if ! nova-manage cell_v2 list_cells | grep -q ' cell1 '; then
    nova-manage cell_v2 create_cell --name cell1
fi
wait "$cell0"
nova-manage db sync
wait "$register"
{%- else %}
# Only nova-api runs nova's bootstrap; the admin password stays off the
# other nodes.
echo "kolla-bootstrap.sh: run it in nova-api" >&2
exit 1
{%- endif %}
{%- else %}
# The long-running container gets this file without its secrets: only
# the bootstrap job runs it.
echo "kolla-bootstrap.sh: only the bootstrap job runs this" >&2
exit 1
{%- endif %}
