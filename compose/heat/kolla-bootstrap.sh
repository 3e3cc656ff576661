#!/bin/bash
# Heat's bootstrap job: schema, then its user, its two services (the
# native API and the CloudFormation one) and their endpoints in Keystone,
# the roles its policies name, and the `heat` domain that holds the users
# and projects stacks make, with its administrator. Every step is
# idempotent. Passwords travel in this file (mode 0700, owner heat), never
# on a command line.
set -euo pipefail
{% if kolla_job -%}
heat-manage db_sync
export OS_AUTH_URL=http://{{ internal_address }}:5000/v3 OS_USERNAME=admin OS_PROJECT_NAME=admin
export OS_PASSWORD={{ passwords.keystone_admin_password | shell }}
export KOLLA_SERVICE_PASSWORD={{ passwords.heat_keystone_password | shell }}
export KOLLA_DOMAIN_ADMIN_PASSWORD={{ passwords.heat_domain_admin_password | shell }}
kolla_keystone_register --name heat --type orchestration --description "Orchestration service" \
    --user heat --url 'http://{{ api_address }}:8004/v1/%(tenant_id)s' \
    --role heat_stack_owner --role heat_stack_user --domain heat --domain-admin heat_domain_admin
kolla_keystone_register --name heat-cfn --type cloudformation \
    --description "Orchestration service (CloudFormation)" \
    --user heat --url 'http://{{ api_address }}:8000/v1'
{%- else %}
# The long-running container gets this file without its secrets: only
# the bootstrap job runs it.
echo "kolla-bootstrap.sh: only the bootstrap job runs this" >&2
exit 1
{%- endif %}
