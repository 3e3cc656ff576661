//! The operator's client credentials for a deployment's admin: the text of
//! `clouds.yaml` (read by the openstack client and SDKs with
//! `OS_CLOUD=kolla-admin`) and of `admin-openrc.sh` (the same as shell
//! variables, for `source`). Pure rendering; `kolla post-deploy` writes
//! them (mode 0600).

use serde::Serialize;

/// The cloud's name in clouds.yaml.
pub const CLOUD_NAME: &str = "kolla-admin";
/// File names, in the config folder.
pub const CLOUDS_FILE: &str = "clouds.yaml";
pub const OPENRC_FILE: &str = "admin-openrc.sh";

/// How the admin reaches the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Keystone's v3 URL (`http://ADDRESS:5000/v3`).
    pub auth_url: String,
    pub password: String,
    pub region: String,
}

#[derive(Serialize)]
struct Clouds<'a> {
    clouds: std::collections::BTreeMap<&'a str, Cloud<'a>>,
}

#[derive(Serialize)]
struct Cloud<'a> {
    auth: Auth<'a>,
    region_name: &'a str,
    identity_api_version: u8,
    interface: &'a str,
}

#[derive(Serialize)]
struct Auth<'a> {
    auth_url: &'a str,
    username: &'a str,
    password: &'a str,
    project_name: &'a str,
    user_domain_name: &'a str,
    project_domain_name: &'a str,
}

impl Admin {
    /// clouds.yaml with one cloud, `kolla-admin`.
    pub fn clouds_yaml(&self) -> Result<String, String> {
        let cloud = Cloud {
            auth: Auth {
                auth_url: &self.auth_url,
                username: "admin",
                password: &self.password,
                project_name: "admin",
                user_domain_name: "Default",
                project_domain_name: "Default",
            },
            region_name: &self.region,
            identity_api_version: 3,
            interface: "public",
        };
        let clouds = Clouds {
            clouds: [(CLOUD_NAME, cloud)].into(),
        };
        let yaml = serde_saphyr::to_string(&clouds).map_err(|e| e.to_string())?;
        Ok(format!(
            "# The deployment's admin, written by `kolla post-deploy`: keep it secret.\n# Use: OS_CLOUD={CLOUD_NAME} openstack ...\n{yaml}"
        ))
    }

    /// admin-openrc.sh: the same as OS_* variables, each value quoted for
    /// the shell.
    pub fn openrc(&self) -> String {
        let variables = [
            ("OS_AUTH_URL", self.auth_url.as_str()),
            ("OS_IDENTITY_API_VERSION", "3"),
            ("OS_USERNAME", "admin"),
            ("OS_PASSWORD", self.password.as_str()),
            ("OS_PROJECT_NAME", "admin"),
            ("OS_USER_DOMAIN_NAME", "Default"),
            ("OS_PROJECT_DOMAIN_NAME", "Default"),
            ("OS_REGION_NAME", self.region.as_str()),
            ("OS_INTERFACE", "public"),
        ];
        let mut text = String::from(
            "# The deployment's admin, written by `kolla post-deploy`: keep it secret.\n# Use: . admin-openrc.sh && openstack ...\n",
        );
        for (name, value) in variables {
            text.push_str(&format!("export {name}={}\n", shell_words::quote(value)));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(password: &str) -> Admin {
        Admin {
            auth_url: "http://10.0.0.10:5000/v3".into(),
            password: password.into(),
            region: "RegionOne".into(),
        }
    }

    #[test]
    fn clouds_yaml_reads_back_as_the_admin_cloud() {
        let text = admin("p: 'a\"#x").clouds_yaml().unwrap();
        let parsed: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let cloud = &parsed["clouds"][CLOUD_NAME];
        assert_eq!(cloud["auth"]["password"], "p: 'a\"#x");
        assert_eq!(cloud["auth"]["auth_url"], "http://10.0.0.10:5000/v3");
        assert_eq!(cloud["auth"]["username"], "admin");
        assert_eq!(cloud["region_name"], "RegionOne");
        assert_eq!(cloud["identity_api_version"], 3);
    }

    #[test]
    fn openrc_quotes_every_value_for_the_shell() {
        let text = admin("it's $HOME `x`").openrc();
        let line = text
            .lines()
            .find(|l| l.starts_with("export OS_PASSWORD="))
            .unwrap();
        let value = line.trim_start_matches("export OS_PASSWORD=");
        assert_eq!(shell_words::split(value).unwrap(), vec!["it's $HOME `x`"]);
        assert!(text.contains("export OS_AUTH_URL=http://10.0.0.10:5000/v3\n"));
    }
}
