#!/bin/bash
# Neutron's bootstrap job (run by neutron-server): the schema, then
# neutron's user, service and endpoints in Keystone. Both steps are
# idempotent. Passwords travel in this file (mode 0700, owner neutron),
# never on a command line.
#
# The schema as upstream's rolling upgrade takes it: the expand
# migrations, which the running (older) neutron-server keeps working on,
# now; the contract ones, which remove what the older release reads, only
# where no older server runs: on a first deploy, on a schema whose expand
# branch was at this release's head already (a swap within the release),
# and in the post-upgrade step of `kolla upgrade --all`, once every
# neutron-server is new. (Contracting under a Zed server made it answer
# 500 for the 20 s until the new one took over.)
set -euo pipefail
{% if kolla_job -%}
db_manage() {
    neutron-db-manage --config-file /etc/neutron/neutron.conf \
        --config-file /etc/neutron/plugins/ml2/ml2_conf.ini "$@"
}
# The revisions the schema is at ("" before the first deploy).
revisions() {
    db_manage current 2>/dev/null | grep -Eo '^[0-9a-f]{12}' | sort | tr '\n' ' ' || true
}
before=$(revisions)
db_manage upgrade --expand
if [ -z "$before" ] || [ "$before" = "$(revisions)" ]; then
    db_manage upgrade --contract
else
    echo "kolla-bootstrap.sh: expand migrations done; the contract ones wait until no older neutron-server runs (kolla upgrade --all runs them last)"
fi
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
