//! A service's config templates (`x-kolla.config.src`, Tera) rendered into
//! the files uploaded into its container before it starts. Secrets reach a
//! container only this way: never through labels, env or command lines.

use std::fmt;

use crate::config::ConfigError;
use crate::config::compose::ServiceSpec;
use crate::config::passwords::Passwords;

/// One rendered config file: where it goes in the container, and its
/// bytes, which may hold secrets: its `Debug` shows the path and the size,
/// never the bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RenderedFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

impl RenderedFile {
    pub fn new(path: impl Into<String>, bytes: impl Into<Vec<u8>>) -> RenderedFile {
        RenderedFile {
            path: path.into(),
            bytes: bytes.into(),
        }
    }
}

impl fmt::Debug for RenderedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RenderedFile({}, {} bytes)", self.path, self.bytes.len())
    }
}

/// What templates may use besides the globals: the node and the service,
/// and the passwords from passwords.yml.
#[derive(Debug, Clone, Default)]
pub struct TemplateInputs {
    pub globals: tera::Context,
    /// The passwords (`passwords.NAME`); the entries set aside are only
    /// named when a template asks for one.
    pub passwords: Passwords,
    pub node_name: String,
    pub node_role: String,
    /// The address the node's services bind and advertise.
    pub api_address: String,
    /// Rendering for the service's bootstrap job (`kolla_job` is true in
    /// the templates) rather than its long-running container: secrets only
    /// the job needs (Keystone's admin password) go in `{% if kolla_job %}`.
    pub job: bool,
}

/// The rendered files of `service`: (path inside the container, bytes),
/// sorted by path. Empty for a service without config templates.
pub fn render(
    service: &ServiceSpec,
    inputs: &TemplateInputs,
) -> Result<Vec<RenderedFile>, ConfigError> {
    let Some(config) = &service.kolla.config else {
        return Ok(Vec::new());
    };
    let sources = if config.src.is_dir() {
        crate::files::walk(&config.src)
            .map_err(|(path, source)| ConfigError::Read { path, source })?
    } else {
        let name = config
            .src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        vec![(name, config.src.clone())]
    };
    if sources.is_empty() {
        return Err(ConfigError::Invalid {
            path: config.src.clone(),
            message: format!(
                "service {}: no config templates here (x-kolla.config.src)",
                service.name
            ),
        });
    }
    let mut context = inputs.globals.clone();
    context.insert("passwords", &inputs.passwords.values);
    context.insert("node_name", &inputs.node_name);
    context.insert("node_role", &inputs.node_role);
    context.insert("api_address", &inputs.api_address);
    context.insert("service_name", &service.name);
    context.insert("kolla_job", &inputs.job);
    let mut files = Vec::new();
    for (relative, path) in sources {
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let mut tera = crate::templates::tera();
        // Tera's messages can quote a value (a password given to `int`).
        let secrets = inputs.passwords.values.values().map(String::as_str);
        let template_error = |e: tera::Error| ConfigError::Invalid {
            path: path.clone(),
            message: format!(
                "service {}: {}",
                service.name,
                // Tera would say "not found": say what the entry is.
                inputs
                    .passwords
                    .asked_for_set_aside(&text)
                    .unwrap_or_else(|| crate::templates::error_text(&e, secrets.clone()))
            ),
        };
        tera.add_raw_template(&relative, &text)
            .map_err(template_error)?;
        let rendered = tera.render(&relative, &context).map_err(template_error)?;
        let target = format!("{}/{}", config.dest.trim_end_matches('/'), relative);
        files.push(RenderedFile::new(target, rendered));
    }
    files.sort();
    Ok(files)
}

/// The files as a tar to unpack at `/` of the container (paths carry their
/// folders, which the engine creates), readable by root only: the image's
/// start script gives each file its owner and mode.
pub fn tar(files: &[RenderedFile]) -> Result<Vec<u8>, std::io::Error> {
    crate::files::tar(files.iter().map(|file| {
        (
            file.path.trim_start_matches('/'),
            0o600,
            file.bytes.as_slice(),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_rendered_file_shows_its_path_and_size_never_its_bytes() {
        let file = RenderedFile::new("/etc/keystone/keystone.conf", "password = hunter2\n");
        let shown = format!("{file:?} {:?}", vec![file.clone()]);
        assert!(shown.contains("/etc/keystone/keystone.conf"), "{shown}");
        assert!(shown.contains("19 bytes"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
    use crate::config::compose::{Variables, parse};

    #[test]
    fn renders_a_folder_with_globals_node_and_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let templates = dir.path().join("web");
        std::fs::create_dir_all(templates.join("conf.d")).unwrap();
        std::fs::write(
            templates.join("web.conf"),
            "tag={{ tag }} node={{ node_name }} pw={{ passwords.web_password }}\n",
        )
        .unwrap();
        std::fs::write(
            templates.join("conf.d/extra.conf"),
            "service={{ service_name }}\n",
        )
        .unwrap();
        let compose = dir.path().join("controller.yml");
        let text =
            "services:\n  web:\n    image: x\n    x-kolla: {config: {src: web/, dest: /etc/web}}\n";
        let file = parse(text, &compose, &Variables::default(), &BTreeMap::new()).unwrap();
        let mut globals = tera::Context::new();
        globals.insert("tag", "zed");
        let inputs = TemplateInputs {
            globals,
            passwords: BTreeMap::from([("web_password".to_string(), "s3cret".to_string())]).into(),
            node_name: "ctl1".into(),
            node_role: "controller".into(),
            api_address: "10.0.0.5".into(),
            job: false,
        };
        let files = render(&file.services[0], &inputs).unwrap();
        assert_eq!(
            files,
            vec![
                RenderedFile::new("/etc/web/conf.d/extra.conf", b"service=web\n".to_vec()),
                RenderedFile::new(
                    "/etc/web/web.conf",
                    b"tag=zed node=ctl1 pw=s3cret\n".to_vec()
                ),
            ]
        );
        let archive = tar(&files).unwrap();
        let mut reader = ::tar::Archive::new(archive.as_slice());
        let paths: Vec<String> = reader
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(paths, vec!["etc/web/conf.d/extra.conf", "etc/web/web.conf"]);
    }

    #[test]
    fn an_undefined_variable_names_the_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("web")).unwrap();
        std::fs::write(
            dir.path().join("web/web.conf"),
            "a\n{{ passwords.missing }}\n",
        )
        .unwrap();
        let text =
            "services:\n  web:\n    image: x\n    x-kolla: {config: {src: web, dest: /etc/web}}\n";
        let file = parse(
            text,
            &dir.path().join("c.yml"),
            &Variables::default(),
            &BTreeMap::new(),
        )
        .unwrap();
        let err = render(&file.services[0], &TemplateInputs::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("web/web.conf") && err.contains("service web"),
            "{err}"
        );
    }

    #[test]
    fn a_template_asking_for_an_entry_set_aside_is_told_its_line() {
        use crate::config::passwords::SetAside;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("web")).unwrap();
        std::fs::write(
            dir.path().join("web/id_rsa"),
            "# key\n{{ passwords.nova_ssh_key.private_key }}\n",
        )
        .unwrap();
        let text =
            "services:\n  web:\n    image: x\n    x-kolla: {config: {src: web, dest: /etc/web}}\n";
        let file = parse(
            text,
            &dir.path().join("c.yml"),
            &Variables::default(),
            &BTreeMap::new(),
        )
        .unwrap();
        let mut inputs = TemplateInputs::default();
        inputs.passwords.path = "/etc/kolla/passwords.yml".into();
        let entry = SetAside {
            line: 7,
            what: "a map",
        };
        inputs
            .passwords
            .set_aside
            .insert("nova_ssh_key".into(), entry);
        let err = render(&file.services[0], &inputs).unwrap_err().to_string();
        assert!(err.contains("web/id_rsa: service web: line 2: asks for passwords.nova_ssh_key, which /etc/kolla/passwords.yml holds at line 7 as a map"), "{err}");
    }
}
