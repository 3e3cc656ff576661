{#- The dashboard's Django settings. Secrets land in Python string
    literals through the `json` filter: a JSON string is a Python one with
    the same value. -#}
# The dashboard of this cloud (openstack-dashboard's local_settings).
# Debian's own settings files (local_settings.d) load after this one:
# compressed static files (COMPRESS_OFFLINE, made when the image was
# built), the static root, the web root "/".
from openstack_dashboard.settings import HORIZON_CONFIG  # noqa: F401

DEBUG = False
# The health check asks for localhost; operators reach the dashboard by
# any name of the node.
ALLOWED_HOSTS = ["*"]
SECRET_KEY = {{ passwords.horizon_secret_key | json }}

OPENSTACK_HOST = "{{ internal_address }}"
OPENSTACK_KEYSTONE_URL = "http://{{ internal_address }}:5000/v3"
OPENSTACK_KEYSTONE_DEFAULT_DOMAIN = "Default"
OPENSTACK_KEYSTONE_DEFAULT_ROLE = "member"
OPENSTACK_ENDPOINT_TYPE = "internalURL"
OPENSTACK_API_VERSIONS = {"identity": 3}
TIME_ZONE = "UTC"

# Sessions in Memcached: a user stays logged in across the dashboard's
# swaps (both generations read the same store), and no database is needed.
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
        "LOCATION": "{{ internal_address }}:11211",
    },
    # The pages' cached fragments (the angular templates the login page
    # preloads, inside a block compressed when the image was built) stay
    # in the process: from a shared cache a new release's dashboard would
    # read its predecessor's fragment, find no compressed file for it, and
    # answer every page with an error.
    "template_fragments": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    },
}
COMPRESS_CACHE_BACKEND = "template_fragments"
# Served over plain HTTP on the node: a cookie marked secure would never
# come back.
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SESSION_TIMEOUT = 3600

# This cloud runs no Cinder: the dashboard must not ask for volumes.
OPENSTACK_CINDER_FEATURES = {"enable_backup": False}
OPENSTACK_HYPERVISOR_FEATURES = {"can_set_mount_point": False, "can_set_password": False}
LAUNCH_INSTANCE_DEFAULTS = {"create_volume": False}
OPENSTACK_NEUTRON_NETWORK = {
    "enable_router": True,
    "enable_quotas": True,
    "enable_distributed_router": False,
    "enable_ha_router": False,
    "enable_fip_topology_check": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"level": "INFO", "class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "horizon": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "openstack_dashboard": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
