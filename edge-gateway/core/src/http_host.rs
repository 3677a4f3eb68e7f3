//! The host an HTTP request or a TLS ClientHello names, as the edge decides and routes it:
//! lowercase, without port and trailing dot, a DNS name (IP literals are not hostname routes).
//! Pure; it reads network input, so it is fuzzed (`tests/fuzz`, target `front_inputs`).

/// The longest host name (RFC 1035 §2.3.4, as the tunnel protocol bounds it).
const MAX_HOST_LEN: usize = 253;

/// The host a request is for, from its `Host` header (or the authority of an absolute-form
/// target, which takes precedence as RFC 9112 §3.2.2 says): lowercased, without port and
/// trailing dot. `None` when absent or not a DNS name (IP literals and odd bytes included: the
/// front serves hostname routes only).
pub fn request_host(authority: Option<&str>, host_header: Option<&[u8]>) -> Option<String> {
    let raw = match authority {
        Some(authority) => authority,
        None => std::str::from_utf8(host_header?).ok()?,
    };
    normalize_host(raw)
}

/// `raw` (`Name.Example:8080`, `name.example.`) as a lowercase DNS name without port or
/// trailing dot; `None` if it is not one.
pub fn normalize_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let name = match raw.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => raw,
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= MAX_HOST_LEN
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        // A dotted quad is an address, not a name.
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    valid.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_normalized() {
        assert_eq!(
            normalize_host("App.Example:8080").as_deref(),
            Some("app.example")
        );
        assert_eq!(
            normalize_host("app.example.").as_deref(),
            Some("app.example")
        );
        assert_eq!(normalize_host("localhost").as_deref(), Some("localhost"));
        for bad in [
            "",
            ":80",
            "app.example:",
            "app.example:x",
            "a..b",
            "-a.b",
            "10.0.0.1",
            "[::1]",
            "a b",
            "app.example:80:80",
            "é.example",
        ] {
            assert_eq!(normalize_host(bad), None, "{bad:?}");
        }
        assert_eq!(normalize_host(&"a".repeat(64)), None);
    }

    #[test]
    fn the_absolute_form_authority_wins_over_the_header() {
        assert_eq!(
            request_host(Some("a.example"), Some(b"b.example")).as_deref(),
            Some("a.example")
        );
        assert_eq!(
            request_host(None, Some(b"b.example")).as_deref(),
            Some("b.example")
        );
        assert_eq!(request_host(None, Some(b"\xff")), None);
        assert_eq!(request_host(None, None), None);
    }
}
