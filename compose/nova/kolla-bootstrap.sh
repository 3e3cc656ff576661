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
# The cell's schema version before the migrations ("" before the first
# deploy): when they move an existing schema, the new release's upgrade
# check runs again on it (before them, a release that skips others cannot
# read the old schema: kolla-upgrade-check.sh).
schema_version() {
    python3 - <<'PY'
import configparser, urllib.parse
import pymysql
conf = configparser.ConfigParser(interpolation=None, strict=False)
conf.read("/etc/nova/nova.conf")
url = urllib.parse.urlsplit(conf["database"]["connection"].replace("mysql+pymysql", "mysql", 1))
try:
    connection = pymysql.connect(
        host=url.hostname, port=url.port or 3306, database=url.path.lstrip("/"),
        user=urllib.parse.unquote(url.username or ""),
        password=urllib.parse.unquote(url.password or ""))
    with connection.cursor() as cursor:
        cursor.execute("SELECT version_num FROM alembic_version")
        print(" ".join(sorted(row[0] for row in cursor.fetchall())))
except pymysql.err.MySQLError:
    print("")
PY
}
before=$(schema_version || true)
nova-manage api_db sync
nova-manage cell_v2 map_cell0 &
cell0=$!
if ! nova-manage cell_v2 list_cells | grep -q ' cell1 '; then
    nova-manage cell_v2 create_cell --name cell1
fi
wait "$cell0"
nova-manage db sync
wait "$register"
if [ -n "$before" ] && [ "$before" != "$(schema_version || true)" ]; then
    status=0
    /etc/nova/kolla-upgrade-check.sh || status=$?
    if [ "$status" -ge 2 ]; then
        echo "kolla-bootstrap.sh: the upgrade check fails on the migrated schema (above): the running nova-api is on a schema newer than its code; the restore point taken before this job has the schema before (kolla history nova-api lists it; its labels say how to load it)" >&2
        exit 1
    fi
fi
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
