-- Databases and users of the services of this cloud. Idempotent: the
-- bootstrap job runs it again whenever mariadb's config changes.
{#- Users connect over loopback on an all-in-one, and from any node's
    address once the internal address is not loopback. #}
{% set users = [
  ["keystone", passwords.keystone_database_password],
  ["glance", passwords.glance_database_password],
  ["nova", passwords.nova_database_password],
  ["placement", passwords.placement_database_password],
  ["neutron", passwords.neutron_database_password],
  ["heat", passwords.heat_database_password],
] %}
{% for user in users %}
CREATE DATABASE IF NOT EXISTS {{ user[0] }};
CREATE USER IF NOT EXISTS '{{ user[0] }}'@'localhost' IDENTIFIED BY '{{ user[1] | sql }}';
CREATE USER IF NOT EXISTS '{{ user[0] }}'@'{% if internal_address == "127.0.0.1" %}127.0.0.1{% else %}%{% endif %}' IDENTIFIED BY '{{ user[1] | sql }}';
ALTER USER '{{ user[0] }}'@'localhost' IDENTIFIED BY '{{ user[1] | sql }}';
ALTER USER '{{ user[0] }}'@'{% if internal_address == "127.0.0.1" %}127.0.0.1{% else %}%{% endif %}' IDENTIFIED BY '{{ user[1] | sql }}';
GRANT ALL PRIVILEGES ON {{ user[0] }}.* TO '{{ user[0] }}'@'localhost';
GRANT ALL PRIVILEGES ON {{ user[0] }}.* TO '{{ user[0] }}'@'{% if internal_address == "127.0.0.1" %}127.0.0.1{% else %}%{% endif %}';
{% endfor %}
CREATE DATABASE IF NOT EXISTS nova_api;
CREATE DATABASE IF NOT EXISTS nova_cell0;
GRANT ALL PRIVILEGES ON nova_api.* TO 'nova'@'localhost';
GRANT ALL PRIVILEGES ON nova_api.* TO 'nova'@'{% if internal_address == "127.0.0.1" %}127.0.0.1{% else %}%{% endif %}';
GRANT ALL PRIVILEGES ON nova_cell0.* TO 'nova'@'localhost';
GRANT ALL PRIVILEGES ON nova_cell0.* TO 'nova'@'{% if internal_address == "127.0.0.1" %}127.0.0.1{% else %}%{% endif %}';
FLUSH PRIVILEGES;
