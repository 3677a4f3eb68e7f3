//! The request head of an HTTP flow stream, read before the origin sees it so the connector can
//! match the rule by path, apply `httpHostHeader` and add the identity assertion header.
//!
//! An `Http` flow stream carries one HTTP/1.1 request (docs/tunnel-protocol.md): the connector
//! rewrites that request's head and forwards every byte after it (the body, and anything else
//! the edge sends) verbatim. Pure: [`parse_head`] is fed the bytes read so far.

/// The longest request head read; a longer one is answered with 431.
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// The most header lines a request head may have; more is answered with 431.
pub const MAX_HEADERS: usize = 100;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request target as sent (origin form: path and query).
    pub target: String,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub headers: Vec<(String, Vec<u8>)>,
    /// How many bytes of the input the head took; what follows is the body.
    pub len: usize,
}

/// Why the head could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error(
        "request head longer than {MAX_REQUEST_HEAD} bytes or more than {MAX_HEADERS} headers"
    )]
    TooLarge,
    #[error("invalid request head")]
    Invalid,
}

impl RequestHead {
    /// The path without the query, as ingress path rules see it (cloudflared's `URL.Path`);
    /// `/` for an asterisk or absolute-form target this matcher does not take apart.
    pub fn path(&self) -> &str {
        let path = self.target.split(['?', '#']).next().unwrap_or_default();
        if path.starts_with('/') {
            path
        } else {
            "/"
        }
    }

    /// The head as sent to the origin: `Host` replaced by `host_header` when set, every
    /// `assertion_header` from the client dropped (a client cannot forge it) and, when the edge
    /// sent one, the identity assertion added under that name. Other headers keep their order
    /// and bytes.
    pub fn rewrite(
        &self,
        host_header: Option<&str>,
        assertion_header: &str,
        assertion: Option<&str>,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len + assertion.map_or(0, str::len) + 64);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(format!(" HTTP/1.{}\r\n", self.minor_version).as_bytes());
        let host_header = host_header.filter(|h| is_header_value(h));
        if let Some(host) = host_header {
            push_header(&mut out, "Host", host.as_bytes());
        }
        for (name, value) in &self.headers {
            let replaced = host_header.is_some() && name.eq_ignore_ascii_case("host");
            if replaced || name.eq_ignore_ascii_case(assertion_header) {
                continue;
            }
            push_header(&mut out, name, value);
        }
        if let Some(assertion) = assertion.filter(|a| is_header_value(a)) {
            push_header(&mut out, assertion_header, assertion.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// Parses the head at the start of `buf`: `Ok(None)` while it is incomplete and shorter than
/// [`MAX_REQUEST_HEAD`].
///
/// # Errors
/// The head is malformed, too long, or has too many headers.
pub fn parse_head(buf: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let bounded = &buf[..buf.len().min(MAX_REQUEST_HEAD)];
    match request.parse(bounded) {
        Ok(httparse::Status::Complete(len)) => Ok(Some(RequestHead {
            method: request.method.unwrap_or_default().to_owned(),
            target: request.path.unwrap_or_default().to_owned(),
            minor_version: request.version.unwrap_or(1),
            headers: request
                .headers
                .iter()
                .map(|h| (h.name.to_owned(), h.value.to_vec()))
                .collect(),
            len,
        })),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_REQUEST_HEAD => Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(_) => Err(HeadError::Invalid),
    }
}

/// A minimal response with no body that closes the connection.
pub fn status_response(code: u16, reason: &str) -> Vec<u8> {
    format!("HTTP/1.1 {code} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .into_bytes()
}

/// Printable ASCII and tabs only: nothing that could end the header line.
fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const REQUEST: &[u8] = b"POST /api/x?q=1 HTTP/1.1\r\nHost: app.example.com\r\n\
        gatehouse-assertion: forged\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn head_parses_and_leaves_the_body() {
        let head = parse_head(REQUEST).unwrap().unwrap();
        assert_eq!(head.method, "POST");
        assert_eq!(head.path(), "/api/x");
        assert_eq!(&REQUEST[head.len..], b"body");
    }

    #[test]
    fn incomplete_head_waits_and_oversized_head_fails() {
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_REQUEST_HEAD, b'a');
        assert_eq!(parse_head(&long), Err(HeadError::TooLarge));
        assert_eq!(
            parse_head(b"\x01\x02 nonsense\r\n\r\n"),
            Err(HeadError::Invalid)
        );
    }

    #[test]
    fn rewrite_replaces_host_drops_forged_assertion_and_adds_the_real_one() {
        let head = parse_head(REQUEST).unwrap().unwrap();
        let out = head.rewrite(
            Some("internal.test"),
            "Gatehouse-Assertion",
            Some("eyJ.e30.sig"),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /api/x?q=1 HTTP/1.1\r\nHost: internal.test\r\nContent-Length: 4\r\n\
             Gatehouse-Assertion: eyJ.e30.sig\r\n\r\n"
        );
    }

    #[test]
    fn rewrite_without_options_keeps_the_head() {
        let head = parse_head(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n")
            .unwrap()
            .unwrap();
        let out = head.rewrite(None, "Gatehouse-Assertion", None);
        assert_eq!(out, b"GET / HTTP/1.0\r\nHost: a\r\n\r\n");
    }

    #[test]
    fn values_that_could_split_headers_are_not_written() {
        let head = parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .unwrap();
        let out = head.rewrite(Some("x\r\nEvil: 1"), "A", Some("j\nk"));
        assert_eq!(out, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    }
}
