//! [`TestDir`]: a per-test temporary directory, kept when the test fails.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// A unique directory under [`std::env::temp_dir`], for configs, keys, sockets and logs.
///
/// Removed on `Drop`, unless the test thread is panicking: then it is kept, and its path printed,
/// so the logs can be read after the failure.
#[derive(Debug)]
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Creates `gatehouse-e2e-<prefix>-<pid>-<random>` in the system temporary directory.
    ///
    /// # Errors
    /// If the directory cannot be created.
    pub fn new(prefix: &str) -> anyhow::Result<TestDir> {
        let name = format!(
            "gatehouse-e2e-{prefix}-{}-{}",
            std::process::id(),
            crate::random_suffix(6)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path)
            .with_context(|| format!("failed to create {}", path.display()))?;
        Ok(TestDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path()/name`.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `contents` to `path()/name` and returns that path.
    ///
    /// # Errors
    /// If the file cannot be written.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> anyhow::Result<PathBuf> {
        let path = self.join(name);
        std::fs::write(&path, contents)
            .with_context(|| format!("failed to write {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for TestDir {
    #[allow(clippy::print_stderr)] // Where the failed test's files are is for the reader.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("e2e: test failed; kept {}", self.path.display());
            return;
        }
        if let Err(err) = std::fs::remove_dir_all(&self.path) {
            eprintln!("e2e: failed to remove {}: {err}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_is_removed_on_drop() {
        let dir = TestDir::new("unit").expect("temp dir");
        let file = dir.write("a.txt", "x").expect("write");
        let path = dir.path().to_path_buf();
        assert!(file.is_file());
        drop(dir);
        assert!(!path.exists());
    }
}
