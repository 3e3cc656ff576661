#!/bin/bash
# Neutron's bootstrap job (run by neutron-server): the schema (every
# branch, to the heads of this release), then neutron's user, service and
# endpoints in Keystone. Both steps are idempotent. Passwords travel in
# this file (mode 0700, owner neutron), never on a command line.
set -euo pipefail
{% if kolla_job -%}
neutron-db-manage --config-file /etc/neutron/neutron.conf \
    --config-file /etc/neutron/plugins/ml2/ml2_conf.ini upgrade heads
export OS_AUTH_URL=http://{{ internal_address }}:5000/v3 OS_USERNAME=admin OS_PROJECT_NAME=admin
export OS_PASSWORD={{ passwords.keystone_admin_password | shell }}
export KOLLA_SERVICE_PASSWORD={{ passwords.neutron_keystone_password | shell }}
kolla_keystone_register --name neutron --type network --description "Networking service" \
    --user neutron --url http://{{ api_address }}:9696
{%- else %}
# The long-running container gets this file without its secrets: only
# the bootstrap job runs it.
echo "kolla-bootstrap.sh: only the bootstrap job runs this" >&2
exit 1
{%- endif %}
