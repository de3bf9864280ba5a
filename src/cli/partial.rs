//! Results that appear whole: `query --output` and `--evidence` write under
//! a hidden `.NAME.….partial` name beside where the result goes and are
//! renamed into place once complete, so a query that fails or is stopped
//! never leaves half a result where a job or an auditor looks for one. The
//! hidden names get the permissions an ordinary file or folder would (the
//! user's umask), not a temporary file's owner-only ones.

use std::path::Path;

use anyhow::Context;

/// A hidden file beside `path` (whose directory must exist).
pub fn file_beside(path: &Path) -> anyhow::Result<tempfile::NamedTempFile> {
    let (dir, name) = split(path)?;
    // A missing directory is named as the user gave it, not by the hidden
    // name that could not be created in it.
    std::fs::metadata(dir).with_context(|| format!("cannot create {}", path.display()))?;
    let prefix = format!(".{name}.");
    builder(&prefix, 0o666)
        .tempfile_in(dir)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// A hidden folder beside `path`, creating the directories above it.
pub fn dir_beside(path: &Path) -> anyhow::Result<tempfile::TempDir> {
    let (dir, name) = split(path)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", path.display()))?;
    let prefix = format!(".{name}.");
    builder(&prefix, 0o777)
        .tempdir_in(dir)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// The directory `path` is in (`.` for a bare name) and its file name.
fn split(path: &Path) -> anyhow::Result<(&Path, String)> {
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?
        .to_string_lossy()
        .into_owned();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// Names `PREFIX….partial`, created with `mode` less the umask.
fn builder(prefix: &str, mode: u32) -> tempfile::Builder<'_, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix).suffix(".partial");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    builder
}
