#!/bin/bash
# Placement's bootstrap job: schema, then its user, service and endpoints in
# Keystone. Both steps are idempotent. Passwords travel in this file (mode
# 0700, owner placement), never on a command line.
set -euo pipefail
{% if kolla_job -%}
placement-manage db sync
export OS_AUTH_URL=http://{{ internal_address }}:5000/v3 OS_USERNAME=admin OS_PROJECT_NAME=admin
export OS_PASSWORD={{ passwords.keystone_admin_password | shell }}
export KOLLA_SERVICE_PASSWORD={{ passwords.placement_keystone_password | shell }}
kolla_keystone_register --name placement --type placement --description "Placement service" \
    --user placement --url http://{{ api_address }}:8778
{%- else %}
# The long-running container gets this file without its secrets: only
# the bootstrap job runs it.
echo "kolla-bootstrap.sh: only the bootstrap job runs this" >&2
exit 1
{%- endif %}
