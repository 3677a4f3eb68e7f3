//! Policy files: TOML and YAML, malformed input with located errors, and in-file tests.
#![allow(clippy::unwrap_used)]

use edge_policy::{load, parse, Format, LoadError, PolicySet, UnixTime};

const TOML_FILE: &str = r#"version = 1

[[applications]]
name = "wiki"
destinations = [{ host = "wiki.corp.example" }]

[[applications.policies]]
name = "eng"
action = "allow"
include = [{ group = "eng" }]
require = [{ os_version = "6.1" }]

[[tests]]
name = "eng on a new kernel reads the wiki"
subject = { email = "ada@corp.example", groups = ["eng"], idp = "okta", login_method = "hwk" }
device = { os = "linux", os_version = "6.5", client_version = "0.1.0" }
source_ip = "192.0.2.1"
request = { host = "wiki.corp.example", path = "/" }
at = "2026-01-05T10:00:00Z"
expect = "allow"

[[tests]]
name = "strangers are denied"
subject = { email = "eve@evil.example" }
request = { host = "wiki.corp.example" }
expect = "deny"
"#;

const YAML_FILE: &str = r#"version: 1
applications:
  - name: wiki
    destinations:
      - host: wiki.corp.example
    policies:
      - name: eng
        action: allow
        include:
          - group: eng
        require:
          - os_version: "6.1"
tests:
  - name: eng on a new kernel reads the wiki
    subject: { email: ada@corp.example, groups: [eng], idp: okta, login_method: hwk }
    device: { os: linux, os_version: "6.5", client_version: 0.1.0 }
    source_ip: 192.0.2.1
    request: { host: wiki.corp.example, path: / }
    at: "2026-01-05T10:00:00Z"
    expect: allow
  - name: strangers are denied
    subject: { email: eve@evil.example }
    request: { host: wiki.corp.example }
    expect: deny
"#;

fn error(source: &str, format: Format) -> String {
    let name = match format {
        Format::Toml => "policy.toml",
        Format::Yaml => "policy.yaml",
    };
    parse(source, format, name).unwrap_err().to_string()
}

#[test]
fn toml_and_yaml_files_parse_to_the_same_model_and_pass_their_tests() {
    let toml = parse(TOML_FILE, Format::Toml, "policy.toml").unwrap();
    let yaml = parse(YAML_FILE, Format::Yaml, "policy.yaml").unwrap();
    assert_eq!(toml, yaml);
    assert_eq!(toml.tests.len(), 2);
    let set: PolicySet = load(TOML_FILE, Format::Toml, "policy.toml").unwrap();
    assert_eq!(set.application_names().collect::<Vec<_>>(), ["wiki"]);
    assert_eq!(set.rule_count(), 2);
    assert!(load(YAML_FILE, Format::Yaml, "policy.yaml").is_ok());
}

#[test]
fn a_failing_test_rejects_the_file_with_its_name_and_explanation() {
    let broken = TOML_FILE.replace("os_version = \"6.5\"", "os_version = \"5.10\"");
    let error = load(&broken, Format::Toml, "policy.toml").unwrap_err();
    assert!(
        matches!(&error, LoadError::TestFailed { test, .. } if test == "eng on a new kernel reads the wiki")
    );
    assert_eq!(
        error.to_string(),
        "policy.toml: test `eng on a new kernel reads the wiki` failed: expected allow, got deny: \
         application `wiki` matched host wiki.corp.example; policy `eng` skipped: require rule 1 \
         (os_version >= 6.1) not met; no policy matched"
    );
    let outcomes = edge_policy::run_tests(
        &PolicySet::compile(&parse(&broken, Format::Toml, "p").unwrap()),
        &parse(&broken, Format::Toml, "p").unwrap().tests,
    );
    assert_eq!(
        outcomes.iter().map(|o| o.passed).collect::<Vec<_>>(),
        [false, true]
    );
}

#[test]
fn a_test_time_drives_time_windows() {
    let file = TOML_FILE.replace(
        "require = [{ os_version = \"6.1\" }]",
        "require = [{ time = { days = [\"mon\"], hours = \"09:00-17:00\" } }]",
    );
    assert!(load(&file, Format::Toml, "p.toml").is_ok());
    let sunday = file.replace("2026-01-05T10:00:00Z", "2026-01-04T10:00:00Z");
    let error = load(&sunday, Format::Toml, "p.toml")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("require rule 1 (time mon 09:00-17:00 UTC) not met"),
        "{error}"
    );
}

#[test]
fn a_bad_action_names_line_column_and_field() {
    let file = TOML_FILE.replace("action = \"allow\"", "action = \"alow\"");
    assert_eq!(
        error(&file, Format::Toml),
        "policy.toml:9:10: applications[0].policies[0].action: unknown variant `alow`, expected \
         one of `allow`, `block`, `bypass`, `service_auth`"
    );
    let file = YAML_FILE.replace("action: allow", "action: alow");
    assert_eq!(
        error(&file, Format::Yaml),
        "policy.yaml:8:17: applications[0].policies[0].action: unknown variant `alow`, expected \
         one of `allow`, `block`, `bypass`, `service_auth`"
    );
}

#[test]
fn unknown_fields_are_rejected_with_their_location() {
    let file = TOML_FILE.replace(
        "include = [{ group = \"eng\" }]",
        "include = [{ grup = \"eng\" }]",
    );
    let message = error(&file, Format::Toml);
    assert!(
        message.starts_with(
            "policy.toml:10:14: applications[0].policies[0].include[0].grup: unknown field `grup`"
        ),
        "{message}"
    );
    let file = YAML_FILE.replace("  - name: wiki\n", "  - name: wiki\n    color: red\n");
    let message = error(&file, Format::Yaml);
    assert!(
        message.starts_with("policy.yaml:4:5: applications[0].color: unknown field `color`"),
        "{message}"
    );
    let file = TOML_FILE.replace(
        "expect = \"deny\"",
        "expect = \"deny\"\nexpected = \"deny\"",
    );
    assert!(error(&file, Format::Toml).contains("tests[1].expected: unknown field `expected`"));
}

#[test]
fn bad_values_are_rejected_with_their_location() {
    let cases = [
        ("{ host = \"wiki.corp.example\" }", "{ cidr = \"10.0.0/8\" }", "policy.toml:5:26: applications[0].destinations[0].cidr: invalid CIDR `10.0.0/8`"),
        ("{ host = \"wiki.corp.example\" }", "{ cidr = \"10.0.0.1/8\" }", "policy.toml:5:26: applications[0].destinations[0].cidr: invalid CIDR `10.0.0.1/8`: host bits are set (the network is 10.0.0.0/8)"),
        ("{ host = \"wiki.corp.example\" }", "{ cidr = \"10.0.0.0/8\", ports = [0] }", "policy.toml:5:49: applications[0].destinations[0].ports[0]: invalid port `0`: 1 to 65535"),
        ("{ host = \"wiki.corp.example\" }", "{ host = \"a.*.example\" }", "applications[0].destinations[0].host: invalid hostname `a.*.example`"),
        ("{ host = \"wiki.corp.example\" }", "{ host = \"a.example\", cidr = \"10.0.0.0/8\" }", "applications[0].destinations[0]: a destination has exactly one of `host`, `cidr` or `internet`"),
        ("{ os_version = \"6.1\" }", "{ os_version = \"6.x\" }", "policy.toml:11:27: applications[0].policies[0].require[0].os_version: invalid version `6.x`"),
        ("{ os_version = \"6.1\" }", "{ time = { hours = \"9-25\" } }", "applications[0].policies[0].require[0].time: invalid hours `9-25`"),
        ("{ os_version = \"6.1\" }", "{ group = \"a\", email = \"b@c\" }", "applications[0].policies[0].require[0]: a rule has exactly one selector, found 2"),
        ("include = [{ group = \"eng\" }]", "include = []", "policy.toml:7:1: applications[0].policies[0]: policy `eng`: `include` must list at least one rule for action allow"),
        ("at = \"2026-01-05T10:00:00Z\"", "at = \"monday\"", "tests[0].at: invalid RFC 3339 time `monday`"),
        ("version = 1", "version = 2", "policy.toml:1:11: version: unsupported version 2, expected 1"),
    ];
    let mismatches: Vec<String> = cases
        .iter()
        .map(|(from, to, expected)| {
            (
                error(&TOML_FILE.replacen(from, to, 1), Format::Toml),
                expected,
            )
        })
        .filter(|(message, expected)| !message.contains(*expected))
        .map(|(message, _)| message)
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn bypass_policies_cannot_use_identity_selectors() {
    let file = TOML_FILE.replace("action = \"allow\"", "action = \"bypass\"");
    let message = error(&file, Format::Toml);
    assert!(
        message
            .contains("bypass skips identity checks, so include[0] (group = eng) cannot be used"),
        "{message}"
    );
}

#[test]
fn duplicate_names_are_rejected() {
    let twice = format!(
        "{TOML_FILE}\n[[applications]]\nname = \"wiki\"\ndestinations = [{{ internet = true }}]\n"
    );
    assert!(error(&twice, Format::Toml).contains(
        "applications: duplicate application name `wiki` (applications[0] and applications[1])"
    ));
    let tests = TOML_FILE.replace("strangers are denied", "eng on a new kernel reads the wiki");
    assert!(error(&tests, Format::Toml).contains("duplicate test name"));
    let policies = TOML_FILE.replace(
        "require = [{ os_version = \"6.1\" }]",
        "[[applications.policies]]\nname = \"eng\"\naction = \"block\"\ninclude = [{ everyone = true }]",
    );
    assert!(error(&policies, Format::Toml)
        .contains("duplicate policy name `eng` (policies[0] and policies[1])"));
}

#[test]
fn syntax_errors_and_oversized_files_are_rejected() {
    assert!(error("version = ", Format::Toml).starts_with("policy.toml:1:"));
    assert!(error("version: [1", Format::Yaml).starts_with("policy.yaml:"));
    let huge = "#".repeat(edge_policy::MAX_SOURCE_BYTES + 1);
    assert!(error(&huge, Format::Toml).contains("more than the limit"));
    assert!(error("", Format::Toml).contains("missing field `version`"));
}

#[test]
fn unquoted_numeric_versions_get_a_hint() {
    let file = YAML_FILE.replace("os_version: \"6.1\"", "os_version: 6.1");
    assert_eq!(
        error(&file, Format::Yaml),
        "policy.yaml:12:25: applications[0].policies[0].require[0].os_version: 6.1 reads as a \
         number: write it as a string, e.g. \"6.1\""
    );
    // An integer is a fine one-part version.
    let file = YAML_FILE.replace("os_version: \"6.1\"", "os_version: 6");
    assert!(parse(&file, Format::Yaml, "p").is_ok());
    let _ = UnixTime(0);
}

#[test]
fn the_readme_example_loads_and_its_tests_pass() {
    let readme = include_str!("../README.md");
    let start = readme.find("```toml\n").unwrap() + "```toml\n".len();
    let example = &readme[start..start + readme[start..].find("```").unwrap()];
    let file = parse(example, Format::Toml, "README.md").unwrap();
    assert_eq!(file.applications.len(), 3);
    assert_eq!(file.tests.len(), 2);
    assert!(load(example, Format::Toml, "README.md").is_ok());
}
