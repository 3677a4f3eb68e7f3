//! `ingress validate` and `ingress rule <URL>`, in cloudflared's output format (`cloudflared
//! tunnel ingress validate|rule`): what they print is built here as text, `main` writes it.

use std::fmt::Write as _;
use std::path::Path;

use connector_config::{Config, ConfigError, LoadError, Rule};
use url::{Host, Url};

/// What a command prints and whether it succeeded (exit status 0, else 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// For stdout.
    pub stdout: String,
    /// For stderr.
    pub stderr: String,
    /// Exit status 0 when true.
    pub success: bool,
}

/// `ingress validate`: `Validating rules from PATH`, then `OK` (after a `Warning:` line per
/// cloudflared key that has no effect), or one `Validation failed: PROBLEM` line per problem on
/// stderr.
pub fn ingress_validate(path: &Path) -> Report {
    let stdout = format!("Validating rules from {}\n", path.display());
    match Config::load(path) {
        Ok(config) => {
            let mut stdout = stdout;
            for notice in &config.notices {
                let _ = writeln!(stdout, "Warning: {notice}");
            }
            stdout.push_str("OK\n");
            Report {
                stdout,
                stderr: String::new(),
                success: true,
            }
        }
        Err(error) => failure(stdout, &error),
    }
}

/// `ingress rule URL`: `Using rules from PATH`, `Matched rule #N` (1-based, like the validation
/// messages), then the rule's `hostname`, `path` and `service` lines, each indented by a tab.
pub fn ingress_rule(path: &Path, url: &str) -> Report {
    let (host, request_path) = match parse_request_url(url) {
        Ok(parts) => parts,
        Err(message) => {
            return Report {
                stdout: String::new(),
                stderr: format!("{message}\n"),
                success: false,
            }
        }
    };
    let stdout = format!("Using rules from {}\n", path.display());
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => return failure(stdout, &error),
    };
    let (index, rule) = config.ingress.matching_rule(&host, &request_path);
    let mut stdout = stdout;
    let _ = writeln!(stdout, "Matched rule #{}", index + 1);
    stdout.push_str(&describe(rule));
    Report {
        stdout,
        stderr: String::new(),
        success: true,
    }
}

/// A rule as cloudflared's `Rule.MultiLineString` prints it.
pub fn describe(rule: &Rule) -> String {
    let mut out = String::new();
    if let Some(hostname) = rule.hostname() {
        let _ = writeln!(out, "\thostname: {hostname}");
    }
    if let Some(path) = rule.path() {
        let _ = writeln!(out, "\tpath: {}", path.as_str());
    }
    let _ = writeln!(out, "\tservice: {}", rule.service());
    out
}

/// Every problem of a configuration that did not load, one message each.
pub fn problems(error: &LoadError) -> Vec<String> {
    match error {
        LoadError::Config {
            source: ConfigError::Invalid(problems),
            ..
        } => problems.0.iter().map(ToString::to_string).collect(),
        LoadError::Config {
            source: source @ ConfigError::Syntax { .. },
            ..
        } => vec![source.to_string()],
        LoadError::Read { .. } => vec![crate::error_chain(error)],
    }
}

fn failure(stdout: String, error: &LoadError) -> Report {
    let mut stderr = String::new();
    for problem in problems(error) {
        let _ = writeln!(stderr, "Validation failed: {problem}");
    }
    Report {
        stdout,
        stderr,
        success: false,
    }
}

/// The host (IPv6 without brackets) and path cloudflared matches a request URL by.
fn parse_request_url(text: &str) -> Result<(String, String), String> {
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            return Err(format!(
                "{text} doesn't have a hostname, consider adding a scheme"
            ))
        }
        Err(_) => return Err(format!("{text} is not a valid URL")),
    };
    let host = match url.host() {
        Some(Host::Domain(name)) => name.to_owned(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        None => {
            return Err(format!(
                "{text} doesn't have a hostname, consider adding a scheme"
            ))
        }
    };
    Ok((host, url.path().to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_urls_give_host_and_path() {
        assert_eq!(
            parse_request_url("https://App.Example.com:8443/api/x?y=1").unwrap(),
            ("app.example.com".to_owned(), "/api/x".to_owned())
        );
        assert_eq!(
            parse_request_url("http://[::1]/").unwrap(),
            ("::1".to_owned(), "/".to_owned())
        );
        assert_eq!(
            parse_request_url("app.example.com/x").unwrap_err(),
            "app.example.com/x doesn't have a hostname, consider adding a scheme"
        );
    }
}
