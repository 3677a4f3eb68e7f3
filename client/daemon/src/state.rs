//! The state directory of a logged-in device: `device.json` ([`DeviceState`]) and
//! `gatehouse.conf` (the wg-quick file with the device's private key), both 0600 in a 0700
//! directory and replaced atomically.

use anyhow::{bail, Context as _};
use client_core::device_state::DeviceState;
use client_core::wg_quick;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use wg::keys::PrivateKey;

/// The saved login.
pub(crate) const DEVICE_FILE: &str = "device.json";
/// The tunnel configuration (holds the private key).
pub(crate) const CONFIG_FILE: &str = "gatehouse.conf";

/// `dir` if given, else [`default_dir`].
///
/// # Errors
/// As [`default_dir`].
pub(crate) fn dir_or_default(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match dir {
        Some(dir) => Ok(dir),
        None => default_dir(),
    }
}

/// `$XDG_STATE_HOME/gatehouse`, else `~/.local/state/gatehouse` (XDG Base Directory spec: a
/// relative `XDG_STATE_HOME` is invalid and ignored).
///
/// # Errors
/// Neither variable holds an absolute path.
pub(crate) fn default_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from) {
        if dir.is_absolute() {
            return Ok(dir.join("gatehouse"));
        }
    }
    match std::env::var_os("HOME").map(PathBuf::from) {
        Some(home) if home.is_absolute() => Ok(home.join(".local/state/gatehouse")),
        _ => bail!("neither XDG_STATE_HOME nor HOME is set: pass --state-dir"),
    }
}

/// Reads `dir/device.json`; `None` if there is none (not logged in).
///
/// # Errors
/// The file exists but cannot be read or is not a device state.
pub(crate) fn load_device(dir: &Path) -> anyhow::Result<Option<DeviceState>> {
    let path = dir.join(DEVICE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
    };
    let state =
        DeviceState::parse(&bytes).with_context(|| format!("invalid {}", path.display()))?;
    Ok(Some(state))
}

/// The device's private key from `dir/gatehouse.conf`, checked against the public key the
/// device enrolled with.
///
/// # Errors
/// The file is missing, invalid, or holds another key: the login has to be repeated.
pub(crate) fn load_private_key(dir: &Path, state: &DeviceState) -> anyhow::Result<PrivateKey> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "failed to read the device key from {}; run `gatehouse login` again",
            path.display()
        )
    })?;
    let config = wg_quick::parse(&text).with_context(|| format!("invalid {}", path.display()))?;
    let key = config.interface.private_key;
    if key.public_key().to_base64() != state.public_key.trim() {
        bail!(
            "the key in {} is not the enrolled device's key; run `gatehouse login` again",
            path.display()
        );
    }
    Ok(key)
}

/// Writes `device.json` and `gatehouse.conf` into `dir` (created 0700), each 0600 and
/// replaced atomically.
///
/// # Errors
/// The directory or a file cannot be written.
pub(crate) fn save(dir: &Path, state: &DeviceState, config: &str) -> anyhow::Result<PathBuf> {
    create_private_dir(dir)?;
    let config_path = dir.join(CONFIG_FILE);
    write_private(&dir.join(DEVICE_FILE), &state.to_json())?;
    write_private(&config_path, config.as_bytes())?;
    Ok(config_path)
}

/// The wall clock in unix seconds (0 before 1970).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("failed to create {}", dir.display()))
}

/// Replaces `path` with `bytes` atomically, readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // `mode` applies only when the file is created; a leftover keeps its own.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("failed to write {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use client_core::enroll::{wg_quick_config, DeviceToken, Edge, Profile};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gatehouse-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn state(public_key: String) -> DeviceState {
        DeviceState {
            version: client_core::device_state::STATE_VERSION,
            identity: "http://127.0.0.1:1".into(),
            device_id: "dev_1".into(),
            device_token: DeviceToken::new("a.b.c".into()),
            public_key,
            profile: Profile {
                addresses: vec!["100.64.0.2/32".parse().unwrap()],
                edges: vec![Edge {
                    name: "e".into(),
                    endpoint: "192.0.2.1:51820".into(),
                    public_key: PrivateKey::from_bytes([9; 32]).public_key().to_base64(),
                    region: None,
                }],
                ..Profile::default()
            },
            edge: None,
            posture: None,
            enrolled_at: None,
            profile_updated_at: None,
        }
    }

    #[test]
    fn state_files_are_private_and_replaced_atomically() {
        let dir = temp_dir("state-private");
        let nested = dir.join("state");

        create_private_dir(&nested).unwrap();
        write_private(&nested.join("f"), b"one").unwrap();
        write_private(&nested.join("f"), b"two").unwrap();

        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&nested.join("f")), 0o600);
        assert_eq!(std::fs::read(nested.join("f")).unwrap(), b"two");
        assert!(!nested.join("f.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn saved_state_loads_back_with_its_key() {
        let dir = temp_dir("state-roundtrip");
        let key = PrivateKey::from_bytes([3; 32]);
        let state = state(key.public_key().to_base64());
        let config = wg_quick_config(&state.profile, &key.to_base64(), None).unwrap();

        save(&dir, &state, &config).unwrap();

        assert_eq!(load_device(&dir).unwrap(), Some(state.clone()));
        let loaded = load_private_key(&dir, &state).unwrap();
        assert_eq!(loaded.to_base64(), key.to_base64());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_key_that_is_not_the_enrolled_one_is_refused() {
        let dir = temp_dir("state-wrong-key");
        let key = PrivateKey::from_bytes([3; 32]);
        let other = PrivateKey::from_bytes([4; 32]).public_key().to_base64();
        let state = state(other);
        let config = wg_quick_config(&state.profile, &key.to_base64(), None).unwrap();
        save(&dir, &state, &config).unwrap();

        let err = load_private_key(&dir, &state).unwrap_err();

        assert!(format!("{err:#}").contains("gatehouse login"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_state_file_means_not_logged_in() {
        let dir = temp_dir("state-missing");

        assert_eq!(load_device(&dir).unwrap(), None);
    }
}
