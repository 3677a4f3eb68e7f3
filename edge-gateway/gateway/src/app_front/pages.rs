//! The pure parts of the application front: reference ids, and the pages the edge answers with
//! itself (denied, no connector, bad request). The host a request names is
//! [`edge_core::http_host`].

use std::fmt;

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
    /// A clientless request's service token is not valid.
    BadServiceToken,
    /// The clientless sign-in's return to the application could not be accepted.
    LoginFailed,
}

impl Page<'_> {
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::Denied { .. } => 403,
            Self::NoConnector | Self::BadGateway => 502,
            Self::Timeout => 504,
            Self::BadRequest | Self::LoginFailed => 400,
            Self::BadServiceToken => 401,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::Denied { .. } => "Access denied",
            Self::NoConnector => "Application unavailable",
            Self::BadGateway => "Bad gateway",
            Self::Timeout => "Gateway timeout",
            Self::BadRequest => "Bad request",
            Self::BadServiceToken => "Unauthorized",
            Self::LoginFailed => "Sign-in failed",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Self::Denied { summary } => summary,
            Self::NoConnector => "no connector for this application is connected to this edge",
            Self::BadGateway => "the application's connector could not complete the request",
            Self::Timeout => "the application's connector did not answer in time",
            Self::BadRequest => "the request does not name a host this edge serves",
            Self::BadServiceToken => "the service token is not valid",
            Self::LoginFailed => {
                "the sign-in could not be completed; open the application's address again"
            }
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
        assert_eq!(Page::BadServiceToken.status(), 401);
        assert_eq!(Page::LoginFailed.status(), 400);
    }
}
