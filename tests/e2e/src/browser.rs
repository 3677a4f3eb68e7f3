//! [`Browser`]: what a person's browser does in a login, for tests: it follows redirects with a
//! cookie jar and fills in the username/password forms of the test providers (`provider.mjs`
//! and identity's built-in local provider), so the real redirects, cookies and forms are
//! exercised rather than skipped.

use anyhow::{bail, Context as _};
use reqwest::blocking::{Client, Response};
use reqwest::header::LOCATION;
use url::Url;

/// Most redirects one navigation follows.
const MAX_REDIRECTS: usize = 20;

/// A page the browser ended on.
#[derive(Debug)]
pub struct Page {
    pub url: Url,
    pub status: u16,
    pub body: String,
}

/// Where a navigation stopped.
#[derive(Debug)]
pub enum Stop {
    /// A page was rendered.
    Page(Page),
    /// A redirect to a URL under the `stop_at` prefix (e.g. a CLI's loopback listener).
    Redirect(Url),
}

/// A cookie-keeping HTTP client that follows redirects itself.
pub struct Browser {
    client: Client,
}

impl Browser {
    /// A fresh browser (empty cookie jar).
    ///
    /// # Errors
    /// If the HTTP client cannot be built.
    pub fn new() -> anyhow::Result<Self> {
        let client = Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(Self { client })
    }

    /// A browser over `client`, which must keep cookies and not follow redirects itself (e.g.
    /// one that trusts a test CA and resolves test hostnames).
    pub fn from_client(client: Client) -> Self {
        Self { client }
    }

    /// The underlying client (keeps the cookies), for form posts a test makes itself.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// GETs `url`, following redirects; stops early at a redirect whose target starts with
    /// `stop_at`.
    ///
    /// # Errors
    /// Transport errors, too many redirects.
    pub fn navigate(&self, url: &str, stop_at: Option<&str>) -> anyhow::Result<Stop> {
        let response = self
            .client
            .get(url)
            .send()
            .with_context(|| format!("GET {url}"))?;
        self.follow(response, stop_at)
    }

    /// Follows the redirects of `response`.
    ///
    /// # Errors
    /// Transport errors, too many redirects, a redirect without a usable `Location`.
    pub fn follow(&self, mut response: Response, stop_at: Option<&str>) -> anyhow::Result<Stop> {
        for _ in 0..MAX_REDIRECTS {
            if !response.status().is_redirection() {
                let url = response.url().clone();
                let status = response.status().as_u16();
                let body = response.text()?;
                return Ok(Stop::Page(Page { url, status, body }));
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .context("redirect without Location")?;
            let next = response.url().join(location)?;
            if stop_at.is_some_and(|prefix| next.as_str().starts_with(prefix)) {
                return Ok(Stop::Redirect(next));
            }
            response = self
                .client
                .get(next.clone())
                .send()
                .with_context(|| format!("GET {next}"))?;
        }
        bail!("more than {MAX_REDIRECTS} redirects")
    }

    /// Fills `username` and `password` into the first POST form of `page` (its hidden inputs
    /// kept), submits it and follows the redirects.
    ///
    /// # Errors
    /// No form on the page, transport errors.
    pub fn sign_in(
        &self,
        page: &Page,
        username: &str,
        password: &str,
        stop_at: Option<&str>,
    ) -> anyhow::Result<Stop> {
        let form = Form::parse(&page.body)
            .with_context(|| format!("no sign-in form at {}: {}", page.url, page.body))?;
        let action = match &form.action {
            Some(a) => page.url.join(a)?,
            None => page.url.clone(),
        };
        let mut fields = form.hidden;
        fields.push(("username".to_owned(), username.to_owned()));
        fields.push(("password".to_owned(), password.to_owned()));
        let response = self.client.post(action).form(&fields).send()?;
        self.follow(response, stop_at)
    }

    /// Navigates to `url` and signs in at the provider's form if one appears.
    ///
    /// # Errors
    /// As [`Browser::navigate`] and [`Browser::sign_in`].
    pub fn login_through(
        &self,
        url: &str,
        username: &str,
        password: &str,
        stop_at: Option<&str>,
    ) -> anyhow::Result<Stop> {
        match self.navigate(url, stop_at)? {
            Stop::Page(page) if page.body.contains("name=\"password\"") => {
                self.sign_in(&page, username, password, stop_at)
            }
            other @ (Stop::Page(_) | Stop::Redirect(_)) => Ok(other),
        }
    }
}

/// The parts of an HTML form a sign-in needs.
struct Form {
    action: Option<String>,
    hidden: Vec<(String, String)>,
}

impl Form {
    /// The first `<form method="post">` and its hidden inputs. Good enough for the test
    /// providers' own markup, not a general HTML parser.
    fn parse(html: &str) -> Option<Self> {
        let start = html.find("<form")?;
        let rest = &html[start..];
        let end = rest.find("</form>").unwrap_or(rest.len());
        let form = &rest[..end];
        let tag_end = form.find('>')?;
        let action = attribute(&form[..tag_end], "action");
        let mut hidden = Vec::new();
        for input in form.split("<input").skip(1) {
            let tag = &input[..input.find('>').unwrap_or(input.len())];
            if attribute(tag, "type").as_deref() == Some("hidden") {
                if let (Some(name), Some(value)) = (attribute(tag, "name"), attribute(tag, "value"))
                {
                    hidden.push((name, value));
                }
            }
        }
        Some(Self { action, hidden })
    }
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// Named entities of `&<>"'` and numeric ones (`&#38;`), as the test providers write them.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_parse_keeps_hidden_inputs_and_action() {
        let html = r#"<p>x</p><form method="post" action="/interaction/a&amp;b/login">
            <input type="hidden" name="state" value="s&quot;1">
            <input name="username"><input type="password" name="password"></form>"#;
        let form = Form::parse(html).expect("a form");
        assert_eq!(form.action.as_deref(), Some("/interaction/a&b/login"));
        assert_eq!(form.hidden, vec![("state".to_owned(), "s\"1".to_owned())]);
        assert!(Form::parse("<p>no form</p>").is_none());
        assert_eq!(unescape("a&#38;b&#x27;&amp;&bogus"), "a&b'&&bogus");
    }
}
