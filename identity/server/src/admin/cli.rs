//! `gatehouse-identity admin …`: one HTTP call to the admin API per command. The server's JSON
//! answer is printed pretty on stdout (`decisions` prints a table unless given `--json`); an
//! error answer's `error_description` becomes the command's error (stderr, exit code 1).

use anyhow::{bail, Context as _};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// How long one admin call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `gatehouse-identity admin …` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct AdminArgs {
    /// The identity server's base URL.
    #[arg(
        long,
        env = "GATEHOUSE_IDENTITY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: Url,
    /// File holding the admin token (the server's `admin_token_file`).
    #[arg(long, env = "GATEHOUSE_IDENTITY_ADMIN_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// List, disable or enable users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// List groups, add or remove members.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// List or revoke devices.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// List or revoke login sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// List, create or revoke service tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// List, create, re-route or revoke connectors.
    #[command(subcommand)]
    Connectors(ConnectorsCommand),
    /// Apply, show, list or explain policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Show audit events, newest first.
    Audit {
        /// Only this action, e.g. `policy_apply`.
        #[arg(long)]
        action: Option<String>,
        /// Only events at or after this Unix time (seconds).
        #[arg(long)]
        since: Option<i64>,
        /// At most this many events (default 100, at most 1000).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show access decisions edges reported, newest first, as a table.
    Decisions(Box<DecisionsArgs>),
}

#[derive(Debug, clap::Args)]
struct DecisionsArgs {
    /// Only this user's decisions (by email).
    #[arg(long)]
    email: Option<String>,
    /// Only this user's decisions (by user id).
    #[arg(long)]
    user: Option<String>,
    /// Only this device's decisions (device id).
    #[arg(long)]
    device: Option<String>,
    #[arg(long, value_parser = ["allow", "deny"])]
    decision: Option<String>,
    /// Only decisions of this application.
    #[arg(long)]
    application: Option<String>,
    /// The reference id a deny page showed (16 hex digits).
    #[arg(long)]
    reference: Option<String>,
    /// Only decisions at or after this Unix time (seconds).
    #[arg(long)]
    since: Option<u64>,
    /// Only decisions before this Unix time (seconds).
    #[arg(long)]
    until: Option<u64>,
    /// Continue after a previous page (its `next page: --before …` line).
    #[arg(long)]
    before: Option<String>,
    /// At most this many decisions (default 100, at most 1000).
    #[arg(long)]
    limit: Option<u32>,
    /// Print the server's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    List,
    Disable {
        id: String,
    },
    Enable {
        id: String,
    },
    /// Re-read the user's groups from the upstream provider now (a user id or an e-mail).
    Sync {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum GroupsCommand {
    List,
    /// Add a user to a group (creating the group).
    Add {
        group: String,
        user_id: String,
    },
    /// Remove a user from a group.
    Remove {
        group: String,
        user_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum DevicesCommand {
    List {
        /// Only this user's devices.
        #[arg(long)]
        user: Option<String>,
    },
    Revoke {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    List {
        #[arg(long)]
        user: String,
    },
    Revoke {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    List,
    /// Create a token; its secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["machine", "edge"])]
        kind: String,
        /// Lifetime in seconds (default: no expiry).
        #[arg(long)]
        expires_in_secs: Option<u64>,
    },
    Revoke {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConnectorsCommand {
    List,
    /// Create a connector; its credential secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// A CIDR or a hostname (`*.domain` allowed); repeat for more.
        #[arg(long = "route")]
        routes: Vec<String>,
    },
    /// Replace a connector's routes.
    Routes {
        id: String,
        #[arg(long = "route")]
        routes: Vec<String>,
    },
    Revoke {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Check a policy file (syntax, in-file tests) and make it the active version. The format
    /// follows the extension: .toml, .yaml or .yml.
    Apply { file: PathBuf },
    /// Show the active version with its source.
    Show,
    /// List the applied versions, newest first.
    List,
    /// Explain what the active policy decides for a request.
    Explain(Box<ExplainArgs>),
}

#[derive(Debug, clap::Args)]
struct ExplainArgs {
    /// The user's email (without it the request has no user).
    #[arg(long)]
    email: Option<String>,
    /// A group of the user; repeat for more.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// The identity provider id the user logged in with.
    #[arg(long)]
    idp: Option<String>,
    /// How the user authenticated (`pwd`, `otp`, `hwk`, …).
    #[arg(long)]
    login_method: Option<String>,
    /// When the user authenticated (Unix seconds).
    #[arg(long)]
    auth_time: Option<i64>,
    /// The id of a service token the request carries.
    #[arg(long)]
    service_token: Option<String>,
    /// An HTTP request to this host.
    #[arg(long, required_unless_present = "ip", conflicts_with = "ip")]
    host: Option<String>,
    /// The HTTP path (default `/`).
    #[arg(long, requires = "host")]
    path: Option<String>,
    /// An IP flow to this address.
    #[arg(long, requires = "protocol")]
    ip: Option<String>,
    #[arg(long, requires = "ip")]
    port: Option<u16>,
    #[arg(long, requires = "ip", value_parser = ["tcp", "udp", "icmp"])]
    protocol: Option<String>,
    /// The request's source address.
    #[arg(long)]
    source_ip: Option<String>,
    #[arg(long)]
    os: Option<String>,
    #[arg(long)]
    os_version: Option<String>,
    #[arg(long)]
    client_version: Option<String>,
    /// When (RFC 3339; default: the server's clock).
    #[arg(long)]
    at: Option<String>,
}

/// One admin API call: method, path below `/admin/v1`, query and body.
struct Call {
    method: Method,
    path: Vec<String>,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl Call {
    fn get(path: &[&str]) -> Self {
        Self {
            method: Method::GET,
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            query: Vec::new(),
            body: None,
        }
    }

    fn post(path: &[&str], body: Option<Value>) -> Self {
        Self {
            method: Method::POST,
            body,
            ..Self::get(path)
        }
    }

    fn with(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    fn query(mut self, name: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(value) = value {
            self.query.push((name, value.to_string()));
        }
        self
    }
}

/// Runs an admin command.
///
/// # Errors
/// An unreadable token or policy file, a failed connection, or the server's error answer.
pub(crate) async fn cli(args: AdminArgs) -> anyhow::Result<()> {
    let AdminArgs {
        url,
        token_file,
        command,
    } = args;
    let Some(token_file) = token_file else {
        bail!("give --token-file or set GATEHOUSE_IDENTITY_ADMIN_TOKEN_FILE");
    };
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| format!("failed to read {}", token_file.display()))?;
    let token = token.trim();
    if token.is_empty() {
        bail!("{} is empty", token_file.display());
    }
    let table = matches!(&command, AdminCommand::Decisions(args) if !args.json);
    let call = call(command)?;
    let answer = send(&url, token, call).await?;
    let text = if table {
        super::table::decisions(&answer)
    } else {
        let mut text =
            serde_json::to_string_pretty(&answer).context("failed to format the answer")?;
        text.push('\n');
        text
    };
    use std::io::Write as _;
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("failed to write to stdout")
}

fn call(command: AdminCommand) -> anyhow::Result<Call> {
    Ok(match command {
        AdminCommand::Users(UsersCommand::List) => Call::get(&["users"]),
        AdminCommand::Users(UsersCommand::Disable { id }) => {
            Call::post(&["users", &id, "disable"], None)
        }
        AdminCommand::Users(UsersCommand::Enable { id }) => {
            Call::post(&["users", &id, "enable"], None)
        }
        AdminCommand::Users(UsersCommand::Sync { id }) => Call::post(&["users", &id, "sync"], None),
        AdminCommand::Groups(GroupsCommand::List) => Call::get(&["groups"]),
        AdminCommand::Groups(GroupsCommand::Add { group, user_id }) => Call::post(
            &["groups", &group, "members"],
            Some(json!({ "user_id": user_id })),
        ),
        AdminCommand::Groups(GroupsCommand::Remove { group, user_id }) => {
            Call::get(&["groups", &group, "members", &user_id]).with(Method::DELETE)
        }
        AdminCommand::Devices(DevicesCommand::List { user }) => {
            Call::get(&["devices"]).query("user", user)
        }
        AdminCommand::Devices(DevicesCommand::Revoke { id }) => {
            Call::post(&["devices", &id, "revoke"], None)
        }
        AdminCommand::Sessions(SessionsCommand::List { user }) => {
            Call::get(&["sessions"]).query("user", Some(user))
        }
        AdminCommand::Sessions(SessionsCommand::Revoke { id }) => {
            Call::post(&["sessions", &id, "revoke"], None)
        }
        AdminCommand::Tokens(TokensCommand::List) => Call::get(&["service-tokens"]),
        AdminCommand::Tokens(TokensCommand::Create {
            name,
            kind,
            expires_in_secs,
        }) => {
            let mut body = json!({ "name": name, "kind": kind });
            if let Some(secs) = expires_in_secs {
                body["expires_in_secs"] = json!(secs);
            }
            Call::post(&["service-tokens"], Some(body))
        }
        AdminCommand::Tokens(TokensCommand::Revoke { id }) => {
            Call::post(&["service-tokens", &id, "revoke"], None)
        }
        AdminCommand::Connectors(ConnectorsCommand::List) => Call::get(&["connectors"]),
        AdminCommand::Connectors(ConnectorsCommand::Create { name, routes }) => Call::post(
            &["connectors"],
            Some(json!({ "name": name, "routes": routes })),
        ),
        AdminCommand::Connectors(ConnectorsCommand::Routes { id, routes }) => Call::post(
            &["connectors", &id, "routes"],
            Some(json!({ "routes": routes })),
        )
        .with(Method::PUT),
        AdminCommand::Connectors(ConnectorsCommand::Revoke { id }) => {
            Call::post(&["connectors", &id, "revoke"], None)
        }
        AdminCommand::Policy(PolicyCommand::Apply { file }) => {
            Call::post(&["policy"], Some(policy_body(&file)?))
        }
        AdminCommand::Policy(PolicyCommand::Show) => Call::get(&["policy"]),
        AdminCommand::Policy(PolicyCommand::List) => Call::get(&["policies"]),
        AdminCommand::Policy(PolicyCommand::Explain(args)) => {
            Call::post(&["policy", "explain"], Some(explain_body(*args)))
        }
        AdminCommand::Audit {
            action,
            since,
            limit,
        } => Call::get(&["audit"])
            .query("action", action)
            .query("since", since)
            .query("limit", limit),
        AdminCommand::Decisions(args) => Call::get(&["decisions"])
            .query("email", args.email)
            .query("user", args.user)
            .query("device", args.device)
            .query("decision", args.decision)
            .query("application", args.application)
            .query("reference", args.reference)
            .query("since", args.since)
            .query("until", args.until)
            .query("before", args.before)
            .query("limit", args.limit),
    })
}

/// `{"format", "source", "file_name"}` for a policy file.
fn policy_body(file: &std::path::Path) -> anyhow::Result<Value> {
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(format) = edge_policy::Format::from_file_name(&file_name) else {
        bail!(
            "cannot tell the format of {}: name it .toml, .yaml or .yml",
            file.display()
        );
    };
    let source = std::fs::read_to_string(file)
        .with_context(|| format!("failed to read {}", file.display()))?;
    Ok(json!({ "format": format, "source": source, "file_name": file_name }))
}

/// The explain body (see the module docs of `admin`); absent options are left out.
fn explain_body(args: ExplainArgs) -> Value {
    let mut subject = serde_json::Map::new();
    put(&mut subject, "email", args.email.map(Value::from));
    if !args.groups.is_empty() {
        subject.insert("groups".into(), json!(args.groups));
    }
    put(&mut subject, "idp", args.idp.map(Value::from));
    put(
        &mut subject,
        "login_method",
        args.login_method.map(Value::from),
    );
    put(&mut subject, "auth_time", args.auth_time.map(Value::from));
    put(
        &mut subject,
        "service_token",
        args.service_token.map(Value::from),
    );
    let mut device = serde_json::Map::new();
    put(&mut device, "os", args.os.map(Value::from));
    put(&mut device, "os_version", args.os_version.map(Value::from));
    put(
        &mut device,
        "client_version",
        args.client_version.map(Value::from),
    );
    let mut request = serde_json::Map::new();
    put(&mut request, "host", args.host.map(Value::from));
    put(&mut request, "path", args.path.map(Value::from));
    put(&mut request, "ip", args.ip.map(Value::from));
    put(&mut request, "port", args.port.map(Value::from));
    put(&mut request, "protocol", args.protocol.map(Value::from));
    let mut body = serde_json::Map::new();
    body.insert("subject".into(), Value::Object(subject));
    if !device.is_empty() {
        body.insert("device".into(), Value::Object(device));
    }
    put(&mut body, "source_ip", args.source_ip.map(Value::from));
    body.insert("request".into(), Value::Object(request));
    put(&mut body, "at", args.at.map(Value::from));
    Value::Object(body)
}

fn put(map: &mut serde_json::Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        map.insert(key.to_owned(), value);
    }
}

/// Sends `call` and returns the JSON answer, or the server's `error_description` as the error.
async fn send(base: &Url, token: &str, call: Call) -> anyhow::Result<Value> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("--url {base} cannot be a base URL"))?
        .pop_if_empty()
        .extend(["admin", "v1"])
        .extend(&call.path);
    if !call.query.is_empty() {
        url.query_pairs_mut().extend_pairs(&call.query);
    }
    let client = reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .build()
        .context("failed to build the HTTP client")?;
    let mut request = client.request(call.method, url.clone()).bearer_auth(token);
    if let Some(body) = &call.body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("failed to call {url}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("failed to read the answer of {url}"))?;
    let answer: Option<Value> = serde_json::from_str(&text).ok();
    if !status.is_success() {
        let description = answer
            .as_ref()
            .and_then(|a| a["error_description"].as_str())
            .map_or_else(|| text.trim().to_owned(), str::to_owned);
        bail!("{description} ({status})");
    }
    answer.with_context(|| format!("{url} answered {status} without JSON"))
}
