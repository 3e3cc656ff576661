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

/// Where `path` leads: itself, or the target of the symlink it is (through
/// every link of a chain), whether or not that target exists yet, so a
/// file kolla replaces stays where the operator's link points.
pub fn link_target(path: &Path) -> std::io::Result<PathBuf> {
    let mut target = path.to_path_buf();
    // As the kernel's own limit on a chain of links (ELOOP).
    for _ in 0..40 {
        match std::fs::symlink_metadata(&target) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = std::fs::read_link(&target)?;
                target = match target.parent() {
                    Some(dir) => dir.join(link),
                    None => link,
                };
            }
            Ok(_) => return Ok(target),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(target),
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("too many levels of symlinks"))
}

/// Replace the file `path` (no symlink: see `link_target`) by `bytes`,
/// whole or not at all: a temporary file beside it, given the old file's
/// mode and owner (`new_mode` when there is no old file) before the first
/// byte, synced, renamed over it, and the folder synced. An error names the
/// step that failed.
pub fn replace(
    path: &Path,
    bytes: &[u8],
    new_mode: u32,
) -> Result<(), (&'static str, std::io::Error)> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let old = match std::fs::metadata(path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(("read", e)),
    };
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".");
    let mut tmp = tempfile::Builder::new()
        .prefix(&name)
        .tempfile_in(dir)
        .map_err(|e| ("create a temporary file beside it", e))?;
    let mode = old
        .as_ref()
        .map_or(new_mode, |m| m.permissions().mode() & 0o7777);
    let file = tmp.as_file();
    if let Some(old) = &old {
        let mine = file.metadata().map_err(|e| ("write", e))?;
        if (mine.uid(), mine.gid()) != (old.uid(), old.gid()) {
            std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid()))
                .map_err(|e| ("keep its owner and group", e))?;
        }
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| ("keep its mode", e))?;
    tmp.write_all(bytes).map_err(|e| ("write", e))?;
    tmp.as_file().sync_all().map_err(|e| ("write", e))?;
    tmp.persist(path)
        .map_err(|e| ("rename the new file over it", e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ("sync its folder", e))
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
    fn link_target_follows_a_chain_even_to_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink("b/real", root.join("a/link1")).unwrap();
        std::os::unix::fs::symlink("a/link1", root.join("link2")).unwrap();
        let plain = root.join("plain");
        assert_eq!(super::link_target(&plain).unwrap(), plain);
        assert_eq!(
            super::link_target(&root.join("link2")).unwrap(),
            root.join("a/b/real")
        );
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(super::link_target(&root.join("loop")).is_err());
    }

    #[test]
    fn replace_keeps_the_mode_and_names_the_step_that_failed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        super::replace(&path, b"new", 0o600).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::replace(&path, b"again", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"again");
        assert_eq!(mode(&path), 0o644);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let (step, _) = super::replace(&dir.path().join("missing/f"), b"x", 0o600).unwrap_err();
        assert_eq!(step, "create a temporary file beside it");
    }

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
