//! `gatehouse-edge ca init`: a new deployment CA and an edge certificate it signed, as PEM
//! files in one directory (`ca.pem`, `ca.key`, `edge.pem`, `edge.key`; keys mode 0600).
//!
//! Connectors trust `ca.pem` (`edge-ca-file`); the edge presents `edge.pem` and `edge.key`
//! (`[connectors] cert_file` and `key_file`). `ca.key` signs further edge certificates and
//! belongs offline once the edges have theirs.

use anyhow::{bail, Context as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use tunnel::ca::DeploymentCa;

/// What `ca init` wrote.
pub(crate) struct Written {
    pub(crate) files: Vec<PathBuf>,
}

/// Creates `dir` if needed and writes the four files; refuses to overwrite any of them.
///
/// # Errors
/// No name or IP given, a file exists already, a name is not a valid DNS name, IO errors.
pub(crate) fn init(dir: &Path, names: &[String], ips: &[IpAddr]) -> anyhow::Result<Written> {
    let mut sans: Vec<String> = names.to_vec();
    sans.extend(ips.iter().map(ToString::to_string));
    if sans.is_empty() {
        bail!("give the edge's names (--name) or addresses (--ip) for its certificate");
    }
    let files: Vec<PathBuf> = ["ca.pem", "ca.key", "edge.pem", "edge.key"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    if let Some(existing) = files.iter().find(|f| f.exists()) {
        bail!("{} exists already; not overwriting it", existing.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let ca = DeploymentCa::generate().context("failed to generate the deployment CA")?;
    let edge = ca
        .issue_edge_cert(&sans)
        .context("failed to issue the edge certificate")?;
    ca.write_pem_files(&files[0], &files[1])
        .context("failed to write the CA")?;
    edge.write_pem_files(&files[2], &files[3])
        .context("failed to write the edge certificate")?;
    Ok(Written { files })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn init_writes_four_files_keys_private_and_refuses_to_overwrite() {
        let dir = std::env::temp_dir().join(format!("gh-ca-init-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let written = init(
            &dir,
            &["edge.test".into()],
            &["10.0.0.1".parse().expect("ip")],
        )
        .expect("init");
        assert_eq!(written.files.len(), 4);
        for key in ["ca.key", "edge.key"] {
            let mode = std::fs::metadata(dir.join(key))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
        let cert = std::fs::read_to_string(dir.join("edge.pem")).expect("edge.pem");
        let key = std::fs::read_to_string(dir.join("edge.key")).expect("edge.key");
        tunnel::config::edge_server_config_from_pem(&cert, &key, &Default::default())
            .expect("usable edge certificate");
        let again = init(&dir, &["edge.test".into()], &[])
            .err()
            .expect("refused");
        assert!(format!("{again:#}").contains("exists already"), "{again:#}");
        assert!(init(&dir.join("x"), &[], &[]).is_err());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
