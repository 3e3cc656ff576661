#!/bin/bash
# Glance's bootstrap job: schema, then its user, service and endpoints in
# Keystone. Both steps are idempotent. Passwords travel in this file (mode
# 0700, owner glance), never on a command line.
set -euo pipefail
{% if kolla_job -%}
glance-manage db_sync
export OS_AUTH_URL=http://{{ internal_address }}:5000/v3 OS_USERNAME=admin OS_PROJECT_NAME=admin
export OS_PASSWORD={{ passwords.keystone_admin_password | shell }}
export KOLLA_SERVICE_PASSWORD={{ passwords.glance_keystone_password | shell }}
kolla_keystone_register --name glance --type image --description "Image service" \
    --user glance --url http://{{ api_address }}:9292
{%- else %}
# The long-running container gets this file without its secrets: only
# the bootstrap job runs it.
echo "kolla-bootstrap.sh: only the bootstrap job runs this" >&2
exit 1
{%- endif %}
