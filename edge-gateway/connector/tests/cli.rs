//! `gatehouse-connector ingress validate|rule` and `version` as a subprocess, output asserted
//! exactly.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

const GOOD: &str = "\
tunnel: 6ff42ae2-765d-4adf-8112-31c55c1551ef
loglevel: debug
ingress:
  - hostname: app.example.com
    path: ^/api/
    service: http://localhost:8001
  - hostname: \"*.example.com\"
    service: https://localhost:8443
  - hostname: db.example.com
    service: tcp://10.0.0.5:5432
  - service: http_status:404
";

const BAD: &str = "\
ingress:
  - hostname: app.example.com:8080
    service: http://localhost:8001
  - hostname: b.example.com
    service: http_status:99
  - hostname: c.example.com
    service: http://localhost:8002
";

struct Output {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

fn connector(config: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse-connector"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("GATEHOUSE_CONNECTOR_CONFIG")
        .output()
        .unwrap();
    Output {
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
        code: output.status.code(),
    }
}

fn write(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("config.yml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn validate_prints_ok_with_warnings_for_ignored_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, GOOD);
    let out = connector(&path, &["ingress", "validate"]);
    assert_eq!(
        out.stdout,
        format!(
            "Validating rules from {}\nWarning: `loglevel` is ignored: gatehouse-connector's \
             logging is set on its command line\nOK\n",
            path.display()
        )
    );
    assert_eq!((out.stderr.as_str(), out.code), ("", Some(0)));
}

#[test]
fn validate_prints_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, BAD);
    let out = connector(&path, &["ingress", "validate"]);
    assert_eq!(
        out.stdout,
        format!("Validating rules from {}\n", path.display())
    );
    assert_eq!(
        out.stderr,
        "Validation failed: rule #1: hostname cannot contain a port\n\
         Validation failed: rule #2: invalid HTTP status code: 99\n\
         Validation failed: rule #3: the last ingress rule must match all URLs (i.e. it should \
         not have a hostname or path filter)\n"
    );
    assert_eq!(out.code, Some(1));
}

#[test]
fn validate_reports_syntax_errors_with_their_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "ingress:\n  - servic: http://x\n");
    let out = connector(&path, &["ingress", "validate"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .starts_with("Validation failed: ingress[0]: unknown field `servic`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.ends_with("at line 2 column 5\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn validate_of_a_missing_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.yml");
    let out = connector(&path, &["ingress", "validate"]);
    assert_eq!(
        out.stderr,
        format!(
            "Validation failed: failed to read {}: No such file or directory (os error 2)\n",
            path.display()
        )
    );
    assert_eq!(out.code, Some(1));
}

#[test]
fn rule_prints_the_first_matching_rule_like_cloudflared() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, GOOD);
    let cases = [
        (
            "https://app.example.com/api/users",
            "Matched rule #1\n\thostname: app.example.com\n\tpath: ^/api/\n\tservice: \
             http://localhost:8001\n",
        ),
        (
            "https://app.example.com/login",
            "Matched rule #2\n\thostname: *.example.com\n\tservice: https://localhost:8443\n",
        ),
        (
            "https://DB.example.com:5432/",
            "Matched rule #2\n\thostname: *.example.com\n\tservice: https://localhost:8443\n",
        ),
        (
            "https://other.test/",
            "Matched rule #4\n\tservice: http_status:404\n",
        ),
    ];
    for (url, expected) in cases {
        let out = connector(&path, &["ingress", "rule", url]);
        assert_eq!(
            out.stdout,
            format!("Using rules from {}\n{expected}", path.display()),
            "{url}"
        );
        assert_eq!((out.stderr.as_str(), out.code), ("", Some(0)), "{url}");
    }
}

#[test]
fn rule_needs_a_url_with_a_hostname() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, GOOD);
    let out = connector(&path, &["ingress", "rule", "app.example.com/api"]);
    assert_eq!(
        out.stderr,
        "app.example.com/api doesn't have a hostname, consider adding a scheme\n"
    );
    assert_eq!(out.code, Some(1));
}

#[test]
fn rule_on_an_invalid_config_fails_validation() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, BAD);
    let out = connector(&path, &["ingress", "rule", "https://b.example.com/"]);
    assert_eq!(out.stdout, format!("Using rules from {}\n", path.display()));
    assert!(out
        .stderr
        .starts_with("Validation failed: rule #1: hostname cannot contain a port\n"));
    assert_eq!(out.code, Some(1));
}

#[test]
fn config_path_comes_from_the_environment_or_defaults_to_config_yml() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, GOOD);
    let bin = env!("CARGO_BIN_EXE_gatehouse-connector");
    let from_env = Command::new(bin)
        .args(["ingress", "validate"])
        .env("GATEHOUSE_CONNECTOR_CONFIG", &path)
        .output()
        .unwrap();
    assert!(String::from_utf8(from_env.stdout)
        .unwrap()
        .starts_with(&format!("Validating rules from {}\n", path.display())));
    let default = Command::new(bin)
        .args(["ingress", "validate"])
        .env_remove("GATEHOUSE_CONNECTOR_CONFIG")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(default.status.success());
    assert!(String::from_utf8(default.stdout)
        .unwrap()
        .starts_with("Validating rules from config.yml\n"));
}

#[test]
fn version_prints_the_package_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = connector(&dir.path().join("unused.yml"), &["version"]);
    assert_eq!(
        out.stdout,
        format!(
            "gatehouse-connector version {}\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(out.code, Some(0));
}
