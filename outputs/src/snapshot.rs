//! A project directory as a code snapshot: a tar whose bytes depend only on the files'
//! paths, contents, executable bits and link targets (sorted, times and owners zeroed),
//! so an unchanged project hashes the same and is not uploaded twice.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::Pattern;

/// What the project's root may hold that never goes into a snapshot.
const LEFT_OUT: [&str; 2] = [".git", ".drover"];

/// The file a project lists what to leave out in, as a `.gitignore`.
pub const IGNORE_FILE: &str = ".droverignore";

/// A snapshot written to a temporary file (gone when dropped).
#[derive(Debug)]
pub struct Snapshot {
    /// The tar.
    pub file: tempfile::NamedTempFile,
    /// Lower-case hex SHA-256 of the tar.
    pub sha256: String,
    /// Bytes of the tar.
    pub size: u64,
    /// Files (and links) in it.
    pub files: u64,
}

/// Why a snapshot could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Past the size cap.
    #[error("the project at {dir} is larger than {limit} bytes as a snapshot: list data and build products in {IGNORE_FILE} (as in a .gitignore) to leave them out")]
    TooLarge {
        /// The project directory.
        dir: PathBuf,
        /// The cap.
        limit: u64,
    },
    /// A file could not be read, or the walk failed.
    #[error("cannot snapshot {path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A `.droverignore` could not be parsed, or the walk failed otherwise.
    #[error("cannot walk the project at {dir}: {reason}")]
    Walk {
        /// The project directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Counts and hashes what is written; refuses to go past `limit`.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    size: u64,
    limit: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size + buf.len() as u64 > self.limit {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, "snapshot cap"));
        }
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the snapshot of `dir`: every file and link under it except `.git/`,
/// `.drover/`, what `.droverignore` files list, and paths a `leave_out` pattern matches
/// (the actions' declared outputs). At most `limit` bytes.
///
/// # Errors
/// [`SnapshotError`]: too large, unreadable, or a bad `.droverignore`.
pub fn snapshot(dir: &Path, leave_out: &[Pattern], limit: u64) -> Result<Snapshot, SnapshotError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SnapshotError::Io { path, source }
    };
    let file = tempfile::NamedTempFile::new().map_err(io_error(dir))?;
    let out = Hashing {
        inner: BufWriter::new(file.reopen().map_err(io_error(file.path()))?),
        hash: Sha256::new(),
        size: 0,
        limit,
    };
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let mut files = 0;
    for entry in walk(dir) {
        let entry = entry.map_err(|e| SnapshotError::Walk {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let Some(relative) = included(dir, entry.path(), leave_out) else {
            continue;
        };
        let kind = entry.file_type();
        if kind.is_some_and(|k| k.is_dir()) {
            continue;
        }
        let added = append(&mut tar, entry.path(), &relative);
        match added {
            Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
                return Err(SnapshotError::TooLarge {
                    dir: dir.to_path_buf(),
                    limit,
                })
            }
            other => other.map_err(io_error(entry.path()))?,
        }
        files += 1;
    }
    let finished = tar.into_inner().and_then(|mut out| {
        out.flush()?;
        Ok(out)
    });
    let out = match finished {
        Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
            return Err(SnapshotError::TooLarge {
                dir: dir.to_path_buf(),
                limit,
            })
        }
        other => other.map_err(io_error(file.path()))?,
    };
    Ok(Snapshot {
        file,
        sha256: hex::encode(out.hash.finalize()),
        size: out.size,
        files,
    })
}

/// The project's entries in name order, `.droverignore` applied (and nothing else of
/// the usual ignore files: a `.gitignore`d file a project needs is still sent).
fn walk(dir: &Path) -> ignore::Walk {
    ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(|e| e.depth() != 1 || !LEFT_OUT.iter().any(|n| e.file_name() == *n))
        .build()
}

/// `path` relative to `dir`, `/`-separated, unless it is left out.
fn included(dir: &Path, path: &Path, leave_out: &[Pattern]) -> Option<String> {
    let relative = path.strip_prefix(dir).ok()?;
    let text = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    if text.is_empty() || leave_out.iter().any(|p| p.matches(&text)) {
        return None;
    }
    Some(text)
}

/// One file or link, with only what makes it reproducible.
fn append<W: Write>(tar: &mut tar::Builder<W>, path: &Path, name: &str) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    let mut header = tar::Header::new_gnu();
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    if meta.file_type().is_symlink() {
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(0o777);
        header.set_size(0);
        let target = std::fs::read_link(path)?;
        return tar.append_link(&mut header, name, target);
    }
    if !meta.is_file() {
        return Ok(()); // sockets, fifos, devices: not code
    }
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(if executable(&meta) { 0o755 } else { 0o644 });
    header.set_size(meta.len());
    tar.append_data(&mut header, name, File::open(path)?)
}

#[cfg(unix)]
fn executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn executable(_: &std::fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, path: &str, text: &str) {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn names(snapshot: &Snapshot) -> Vec<String> {
        let mut tar = tar::Archive::new(File::open(snapshot.file.path()).unwrap());
        tar.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "drover.yaml", "version: '1'\n");
        write(dir.path(), "analysis/model.py", "print(1)\n");
        write(dir.path(), "analysis/data/big.csv", "a\n1\n");
        write(dir.path(), ".git/HEAD", "ref: main\n");
        write(dir.path(), ".drover/state.db", "x");
        write(dir.path(), "output/table.csv", "a\n");
        write(dir.path(), ".droverignore", "data/\n*.log\n");
        write(dir.path(), "run.log", "noise\n");
        dir
    }

    #[test]
    fn leaves_out_git_state_ignored_paths_and_declared_outputs() {
        let dir = project();
        let outputs = [Pattern::parse("output/*.csv").unwrap()];
        let snap = snapshot(dir.path(), &outputs, 1 << 20).unwrap();
        assert_eq!(
            names(&snap),
            [".droverignore", "analysis/model.py", "drover.yaml"]
        );
        assert_eq!(snap.files, 3);
        assert_eq!(
            snap.size,
            std::fs::metadata(snap.file.path()).unwrap().len()
        );
    }

    #[test]
    fn the_same_files_hash_the_same_and_a_change_changes_the_hash() {
        let (a, b) = (project(), project());
        let first = snapshot(a.path(), &[], 1 << 20).unwrap();
        let second = snapshot(b.path(), &[], 1 << 20).unwrap();
        assert_eq!(first.sha256, second.sha256, "times and dirs do not matter");
        write(b.path(), "analysis/model.py", "print(2)\n");
        let third = snapshot(b.path(), &[], 1 << 20).unwrap();
        assert_ne!(first.sha256, third.sha256);
    }

    #[test]
    fn past_the_cap_is_a_clear_error() {
        let dir = project();
        write(dir.path(), "blob.bin", &"x".repeat(64 * 1024));
        let err = snapshot(dir.path(), &[], 16 * 1024).unwrap_err();
        assert!(
            matches!(err, SnapshotError::TooLarge { limit: 16384, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(".droverignore"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn links_are_kept_as_links_never_followed() {
        let dir = project();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd")).unwrap();
        let snap = snapshot(dir.path(), &[], 1 << 20).unwrap();
        let mut tar = tar::Archive::new(File::open(snap.file.path()).unwrap());
        let link = tar
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|e| e.path().unwrap().to_str() == Some("passwd"))
            .unwrap();
        assert_eq!(link.header().entry_type(), tar::EntryType::Symlink);
        assert_eq!(link.header().size().unwrap(), 0);
    }
}
