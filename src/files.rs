//! Files kolla reads and writes. Walking a folder of templates or
//! build-context files: every regular file
//! below it, with its path relative to the folder (`/`-separated), sorted,
//! so the order (and any hash over it) never depends on the filesystem. A
//! symlink that leads outside the folder is an error: a template or build
//! context must never read a file the tree does not hold (a host's
//! /etc/shadow, say).

use std::path::{Path, PathBuf};

/// Write `bytes` to `path` whole or not at all (a sibling `.tmp` file,
/// synced, renamed over it), readable by its owner only from the first
/// byte: for secrets (passwords, keys).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    // The mode of an existing temporary file is not reset by open().
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Every file below `root`: (relative path, full path), sorted by path.
pub fn walk(root: &Path) -> Result<Vec<(String, PathBuf)>, (PathBuf, std::io::Error)> {
    let mut out = Vec::new();
    let canonical = root.canonicalize().map_err(|e| (root.to_path_buf(), e))?;
    visit(&canonical, root, root, &mut out)?;
    out.sort();
    Ok(out)
}

fn visit(
    canonical_root: &Path,
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), (PathBuf, std::io::Error)> {
    let entries = std::fs::read_dir(dir).map_err(|e| (dir.to_path_buf(), e))?;
    for entry in entries {
        let path = entry.map_err(|e| (dir.to_path_buf(), e))?.path();
        let link = std::fs::symlink_metadata(&path).map_err(|e| (path.clone(), e))?;
        if link.file_type().is_symlink() {
            let target = path.canonicalize().map_err(|e| (path.clone(), e))?;
            if !target.starts_with(canonical_root) {
                return Err((
                    path,
                    std::io::Error::other(format!(
                        "a symlink to {}, outside {}; copy the file into the folder instead",
                        target.display(),
                        root.display()
                    )),
                ));
            }
        }
        let meta = std::fs::metadata(&path).map_err(|e| (path.clone(), e))?;
        if meta.is_dir() {
            visit(canonical_root, root, &path, out)?;
        } else {
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push((relative, path));
        }
    }
    Ok(())
}

/// A tar of regular files (path, mode, bytes), owned by root with mtime 0,
/// so the same files always make the same bytes (and the same build cache
/// key).
pub fn tar<'a>(
    files: impl IntoIterator<Item = (&'a str, u32, &'a [u8])>,
) -> Result<Vec<u8>, std::io::Error> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, mode, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, data)?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    #[test]
    fn walks_nested_folders_sorted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        std::fs::write(dir.path().join("b/c/z"), "").unwrap();
        std::fs::write(dir.path().join("a"), "").unwrap();
        std::fs::write(dir.path().join("b/y"), "").unwrap();
        let found: Vec<String> = super::walk(dir.path())
            .unwrap()
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        assert_eq!(found, vec!["a", "b/c/z", "b/y"]);
        assert!(super::walk(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn a_symlink_inside_is_followed_and_one_leading_out_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("real"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("alias")).unwrap();
        let found: Vec<String> = super::walk(&root)
            .unwrap()
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        assert_eq!(found, vec!["alias", "real"]);
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("leak")).unwrap();
        let (path, err) = super::walk(&root).unwrap_err();
        assert_eq!(path, root.join("leak"));
        assert!(err.to_string().contains("outside"), "{err}");
    }
}
