#!/bin/bash
# Keystone's bootstrap job: schema, key repositories, and the admin user,
# project and endpoints. Every step is idempotent. The key repositories
# need no database: they are made beside the schema (each keystone-manage
# spends about 4 s importing Keystone before it does anything).
set -euo pipefail
{% if kolla_job -%}
keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone &
fernet=$!
keystone-manage credential_setup --keystone-user keystone --keystone-group keystone &
credential=$!
keystone-manage db_sync
wait "$fernet"
wait "$credential"
# The password travels in this file (mode 0700, owner keystone), never on a
# command line.
export OS_BOOTSTRAP_PASSWORD={{ passwords.keystone_admin_password | shell }}
keystone-manage bootstrap \
    --bootstrap-username admin \
    --bootstrap-project-name admin \
    --bootstrap-role-name admin \
    --bootstrap-service-name keystone \
    --bootstrap-region-id RegionOne \
    --bootstrap-admin-url http://{{ api_address }}:5000/v3/ \
    --bootstrap-internal-url http://{{ api_address }}:5000/v3/ \
    --bootstrap-public-url http://{{ api_address }}:5000/v3/
{%- else %}
# The long-running container gets this file without its secrets: only
# the bootstrap job runs it.
echo "kolla-bootstrap.sh: only the bootstrap job runs this" >&2
exit 1
{%- endif %}
