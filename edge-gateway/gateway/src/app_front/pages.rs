//! The pure parts of the application front: the host a request names, reference ids, and the
//! pages the edge answers with itself (denied, no connector, bad request).

use std::fmt;

/// The longest host name (RFC 1035 §2.3.4, as the tunnel protocol bounds it).
const MAX_HOST_LEN: usize = 253;

/// A random id shown on the edge's own pages and logged with the decision, so a person who was
/// refused can quote it and an admin can find the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reference(pub(crate) u64);

impl Reference {
    pub(crate) fn random() -> Self {
        Self(rand::random())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The host a request is for, from its `Host` header (or the authority of an absolute-form
/// target, which takes precedence as RFC 9112 §3.2.2 says): lowercased, without port and
/// trailing dot. `None` when absent or not a DNS name (IP literals and odd bytes included: the
/// front serves hostname routes only).
pub(crate) fn request_host(authority: Option<&str>, host_header: Option<&[u8]>) -> Option<String> {
    let raw = match authority {
        Some(authority) => authority,
        None => std::str::from_utf8(host_header?).ok()?,
    };
    normalize_host(raw)
}

/// `raw` (`Name.Example:8080`, `name.example.`) as a lowercase DNS name without port or
/// trailing dot; `None` if it is not one.
pub(crate) fn normalize_host(raw: &str) -> Option<String> {
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

/// What the edge answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page<'a> {
    /// The policy denied the request; `summary` says why in words safe to show.
    Denied { summary: &'a str },
    /// No connector serves the host, or none answered.
    NoConnector,
    /// The connector could not reach the origin, or the exchange broke.
    BadGateway,
    /// The connector did not answer in time.
    Timeout,
    /// No usable `Host`.
    BadRequest,
}

impl Page<'_> {
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::Denied { .. } => 403,
            Self::NoConnector | Self::BadGateway => 502,
            Self::Timeout => 504,
            Self::BadRequest => 400,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::Denied { .. } => "Access denied",
            Self::NoConnector => "Application unavailable",
            Self::BadGateway => "Bad gateway",
            Self::Timeout => "Gateway timeout",
            Self::BadRequest => "Bad request",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Self::Denied { summary } => summary,
            Self::NoConnector => "no connector for this application is connected to this edge",
            Self::BadGateway => "the application's connector could not complete the request",
            Self::Timeout => "the application's connector did not answer in time",
            Self::BadRequest => "the request does not name a host this edge serves",
        }
    }

    /// A small HTML page with the reference id.
    pub(crate) fn html(&self, reference: Reference) -> String {
        let (status, title, detail) = (self.status(), self.title(), escape(self.detail()));
        format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{status} {title}</title></head>\n\
             <body><h1>{title}</h1>\n<p>{detail}.</p>\n\
             <p>Reference: <code>{reference}</code> (quote it to your administrator).</p>\n\
             <p><small>Gatehouse edge</small></p></body></html>\n"
        )
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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

    #[test]
    fn pages_carry_status_reference_and_escaped_text() {
        let page = Page::Denied {
            summary: "a <policy> blocks this request",
        };
        assert_eq!(page.status(), 403);
        let html = page.html(Reference(0xabc));
        assert!(
            html.contains("Reference: <code>0000000000000abc</code>"),
            "{html}"
        );
        assert!(html.contains("a &lt;policy&gt; blocks"), "{html}");
        assert_eq!(Page::NoConnector.status(), 502);
        assert_eq!(Page::Timeout.status(), 504);
        assert_eq!(Page::BadRequest.status(), 400);
    }
}
