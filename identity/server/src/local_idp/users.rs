//! The local provider's users file (TOML) and argon2 password checks.
//!
//! ```toml
//! [[users]]
//! email = "alice@example.com"
//! name = "Alice"                 # default: the email
//! groups = ["eng", "admins"]     # default []
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$…"   # `gatehouse-identity hash-password`
//! ```

use anyhow::{bail, Context as _};
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::Argon2;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: Vec<LocalUser>,
}

/// One local account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LocalUser {
    pub(crate) email: String,
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) groups: Vec<String>,
    password_hash: String,
}

/// The accounts, by lower-case email.
pub(crate) struct Users {
    users: Vec<LocalUser>,
    /// Verified against when the email is unknown, so both cases cost one argon2 run.
    dummy_hash: String,
}

impl Users {
    /// Reads and checks a users file.
    ///
    /// # Errors
    /// Unreadable file, TOML errors, unknown fields, malformed hashes, duplicate emails.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid users file {}", path.display()))
    }

    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        let file: UsersFile = toml::from_str(text)?;
        let mut seen = std::collections::BTreeSet::new();
        for user in &file.users {
            PasswordHash::new(&user.password_hash)
                .map_err(|e| anyhow::anyhow!("user {:?}: password_hash: {e}", user.email))?;
            if !seen.insert(user.email.to_ascii_lowercase()) {
                bail!("user {:?} listed twice", user.email);
            }
        }
        Ok(Self {
            users: file.users,
            dummy_hash: hash_password("dummy password for unknown users")?,
        })
    }

    /// The user if `email` exists and `password` matches. Takes one argon2 verification either
    /// way; argon2 compares the digests in constant time.
    pub(crate) fn authenticate(&self, email: &str, password: &str) -> Option<&LocalUser> {
        let user = self
            .users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email.trim()));
        let hash = user.map_or(self.dummy_hash.as_str(), |u| u.password_hash.as_str());
        let ok = PasswordHash::new(hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        user.filter(|_| ok)
    }

    pub(crate) fn by_email(&self, email: &str) -> Option<&LocalUser> {
        self.users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
    }
}

/// An argon2id PHC string for `password` with a random salt (argon2 crate defaults: RFC 9106
/// §7.4 second recommended option scaled to m=19 MiB, t=2, p=1 as OWASP suggests).
///
/// # Errors
/// Only if argon2 rejects its own parameters.
pub(crate) fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("failed to hash the password: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn file() -> String {
        let hash = hash_password("correct horse").unwrap();
        format!(
            "[[users]]\nemail = \"Alice@example.com\"\ngroups = [\"eng\"]\npassword_hash = \"{hash}\"\n"
        )
    }

    #[test]
    fn right_password_authenticates_case_insensitive_email() {
        let users = Users::parse(&file()).unwrap();
        let user = users
            .authenticate("alice@EXAMPLE.com", "correct horse")
            .unwrap();
        assert_eq!(user.groups, ["eng"]);
    }

    #[test]
    fn wrong_password_and_unknown_user_fail() {
        let users = Users::parse(&file()).unwrap();
        assert!(users.authenticate("alice@example.com", "wrong").is_none());
        assert!(users
            .authenticate("bob@example.com", "correct horse")
            .is_none());
    }

    #[test]
    fn unknown_field_and_bad_hash_are_rejected() {
        assert!(Users::parse("[[users]]\nemail = \"a\"\npassword_hash = \"x\"\n").is_err());
        let err = Users::parse("[[users]]\nemale = \"a\"\n").err().unwrap();
        assert!(format!("{err:#}").contains("emale"), "{err:#}");
    }
}
