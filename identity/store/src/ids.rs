//! Newtype identifiers and the time type.
//!
//! Ids are opaque text. The caller creates them, usually with `from_random` and 16 bytes from its
//! own random source (the store draws no randomness), or with `new` from an id it already has.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! text_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("The prefix of ids made by [`", stringify!($name), "::from_random`].")]
            pub const PREFIX: &'static str = $prefix;

            /// Wraps an existing id (from a token, a URL or a row).
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            #[doc = concat!("A fresh id `", $prefix, "<32 hex digits>` from 16 random bytes the caller drew.")]
            pub fn from_random(bytes: [u8; 16]) -> Self {
                Self(format!("{}{}", $prefix, hex::encode(bytes)))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// A user (one per identity provider and subject).
    UserId,
    "usr_"
);
text_id!(
    /// An enrolled device (one WireGuard public key).
    DeviceId,
    "dev_"
);
text_id!(
    /// A login session.
    SessionId,
    "ses_"
);
text_id!(
    /// A service token (machine, connector or edge credential).
    ServiceTokenId,
    "tok_"
);
text_id!(
    /// A connector.
    ConnectorId,
    "con_"
);

/// A point in time as seconds since the Unix epoch (UTC), always passed in by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixTime(pub i64);

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A position in the revision log; `Revision(0)` is the empty store.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Revision(pub u64);

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
