//! `gatehouse login` against the real `gatehouse-identity` and the npm `oidc-provider`: the
//! device grant and the browser (code + PKCE on a loopback port) flow, each ending in an
//! enrolled device and a wg-quick file the client can bring up. The test plays the person at the
//! browser: `GATEHOUSE_LOGIN_OPEN` points at a script that hands the URL to the test.
//!
//! Then `gatehouse connect` and `gatehouse status` against `gatehouse-identity serve --embedded`
//! and a real `gatehouse-edge` in network namespaces: the profile from identity brings the
//! tunnel up, a saved profile carries it while identity is unreachable, and a revoked device is
//! refused. identity listens on the host's loopback; a forwarder thread lends it to the client
//! namespace at the same address, so the URL saved at login works there.

use std::fs::File;
use std::io::ErrorKind;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use e2e::browser::{Browser, Stop};
use e2e::gatehouse::{Topology, CLIENT_TUNNEL, DEST, EDGE_PORT, EDGE_UNDERLAY};
use e2e::identity::{Identity, UpstreamProvider, TEST_EDGE_PUBLIC_KEY};
use e2e::oidc::{OidcClient, OidcProvider, ALICE, BOB};
use e2e::{
    bin, http_get, skip_unless_node, skip_unless_root, wait_for_socket, wait_until, HttpServer,
    Netns, Proc, TestDir,
};
use serde_json::Value;

fn start(dir: &TestDir) -> (OidcProvider, Identity) {
    let port = Identity::free_loopback_port().expect("port");
    let provider = OidcProvider::start(
        dir,
        OidcClient {
            client_id: "gatehouse-identity".into(),
            client_secret: "s3cret".into(),
            redirect_uris: vec![Identity::redirect_uri(port, "corp")],
        },
    )
    .expect("provider");
    let identity = Identity::start(
        dir,
        port,
        &[UpstreamProvider {
            id: "corp".into(),
            issuer: provider.issuer().into(),
            client_id: "gatehouse-identity".into(),
            client_secret: "s3cret".into(),
            groups_claim: "groups".into(),
        }],
    )
    .expect("identity");
    (provider, identity)
}

/// Starts `gatehouse login` at `identity` (its base URL) with an opener script that writes the
/// URL to `url_file`.
fn login(dir: &TestDir, identity: &str, state: &Path, browser: bool) -> (Proc, PathBuf) {
    let url_file = dir.join(if browser { "browser-url" } else { "device-url" });
    let opener = dir
        .write(
            &format!("open-{}.sh", if browser { "browser" } else { "device" }),
            format!(
                "#!/bin/sh\nprintf '%s' \"$1\" > {}.tmp && mv {0}.tmp {0}\n",
                url_file.display()
            ),
        )
        .expect("opener");
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut command = Command::new(bin("gatehouse"));
    command
        .arg("login")
        .arg("--identity")
        .arg(identity)
        .arg("--state-dir")
        .arg(state)
        .arg("--hostname")
        .arg("e2e-laptop")
        .env("GATEHOUSE_LOGIN_OPEN", &opener)
        .env("RUST_LOG", "info");
    if browser {
        command.arg("--browser");
    }
    let proc = Proc::spawn(command, "gatehouse login", &dir.join("login.log")).expect("login");
    (proc, url_file)
}

fn wait_for_url(proc: &mut Proc, url_file: &Path) -> String {
    let appeared = wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        url_file.exists() || !proc.is_running()
    });
    assert!(
        appeared && url_file.exists(),
        "no URL was opened: {}",
        proc.log()
    );
    std::fs::read_to_string(url_file).expect("url")
}

fn finish(proc: &mut Proc, state: &Path) -> String {
    let status = proc
        .wait_exit(Duration::from_secs(60))
        .expect("login exits");
    assert!(status.success(), "gatehouse login failed: {}", proc.log());
    let log = proc.log();
    assert!(log.contains("enrolled device=dev_"), "{log}");
    let conf = state.join("gatehouse.conf");
    assert_eq!(
        std::fs::metadata(&conf).expect("conf").permissions().mode() & 0o777,
        0o600,
        "the config holds the private key"
    );
    let text = std::fs::read_to_string(&conf).expect("conf");
    assert!(text.contains(TEST_EDGE_PUBLIC_KEY), "{text}");
    assert!(text.contains("127.0.0.1:51820"), "{text}");
    assert!(text.contains("10.0.0.0/8"), "{text}");
    assert!(!log.contains("PrivateKey"), "keys are never logged");
    text
}

fn devices(identity: &Identity) -> Value {
    reqwest::blocking::Client::new()
        .get(identity.url("/admin/v1/devices"))
        .bearer_auth(identity.admin_token())
        .send()
        .expect("devices")
        .json()
        .expect("json")
}

#[test]
fn device_grant_login_enrolls_and_writes_a_wg_quick_file() {
    skip_unless_node!();
    let dir = TestDir::new("client-login-device").expect("dir");
    let (_provider, identity) = start(&dir);
    let state = dir.join("state");
    let (mut proc, url_file) = login(&dir, identity.base_url(), &state, false);
    let url = wait_for_url(&mut proc, &url_file);
    assert!(url.contains("/device?user_code="), "{url}");

    let browser = Browser::new().expect("browser");
    let Stop::Page(approval) = browser
        .login_through(&url, ALICE.username, ALICE.password, None)
        .expect("browser login")
    else {
        panic!("expected the approval page")
    };
    let user_code = url.rsplit('=').next().expect("code");
    assert!(approval.body.contains(user_code), "{}", approval.body);
    let approved = browser
        .client()
        .post(identity.url("/device"))
        .form(&[("user_code", user_code), ("action", "approve")])
        .send()
        .expect("approve");
    assert_eq!(approved.status().as_u16(), 200);

    let conf = finish(&mut proc, &state);
    assert!(conf.contains("100.64.0.2/32"), "{conf}");
    let devices = devices(&identity);
    assert_eq!(
        devices["devices"][0]["posture"]["hostname"], "e2e-laptop",
        "{devices}"
    );
    client_core::wg_quick::parse(&conf).expect("the client's own parser reads it");
}

#[test]
fn browser_login_with_pkce_on_a_loopback_port_enrolls() {
    skip_unless_node!();
    let dir = TestDir::new("client-login-browser").expect("dir");
    let (_provider, identity) = start(&dir);
    let state = dir.join("state");
    let (mut proc, url_file) = login(&dir, identity.base_url(), &state, true);
    let url = wait_for_url(&mut proc, &url_file);
    let authorize = url::Url::parse(&url).expect("authorize url");
    let redirect_uri = authorize
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .expect("redirect_uri");
    assert!(
        redirect_uri.starts_with("http://127.0.0.1:"),
        "{redirect_uri}"
    );

    let browser = Browser::new().expect("browser");
    let Stop::Redirect(back) = browser
        .login_through(&url, BOB.username, BOB.password, Some(&redirect_uri))
        .expect("browser login")
    else {
        panic!("expected the redirect to the client's loopback listener")
    };
    // The browser delivers the code to the client's listener.
    let page = reqwest::blocking::get(back.as_str()).expect("loopback callback");
    assert_eq!(page.status().as_u16(), 200);

    finish(&mut proc, &state);
    let devices = devices(&identity);
    assert_eq!(
        devices["devices"].as_array().map(Vec::len),
        Some(1),
        "{devices}"
    );
}

const HTTP_PORT: u16 = 8080;
const ALLOW_ALL: &str = "[[policy]]\naction = \"allow\"\n";
const ALICE_EMAIL: &str = "alice@example.com";

#[test]
fn connect_brings_the_tunnel_up_from_identitys_profile_and_refuses_a_revoked_device(
) -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    let mut topo = Topology::new("client-connect")?;
    let port = Identity::free_loopback_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let identity_dir = topo.dir.join("identity");
    let _identity = serve_embedded(&topo, &identity_dir, port)?;

    // Log in on the host (where identity is), approving the device code as alice.
    let state = topo.dir.join("state");
    let (mut proc, url_file) = login(&topo.dir, &base, &state, false);
    let url = wait_for_url(&mut proc, &url_file);
    approve_device_code(&base, &url, &password_of(&identity_dir, ALICE_EMAIL));
    let status = proc.wait_exit(Duration::from_secs(30))?;
    assert!(status.success(), "gatehouse login failed: {}", proc.log());
    let device: Value = serde_json::from_slice(&std::fs::read(state.join("device.json"))?)?;
    let device_id = device["device_id"].as_str().expect("device_id").to_owned();
    let token = device["device_token"].as_str().expect("token").to_owned();
    assert_eq!(
        device["profile"]["addresses"][0],
        format!("{CLIENT_TUNNEL}/32")
    );

    // The edge knows the device by its enrolled key, as a [[peers]] entry.
    topo.client_public = device["public_key"]
        .as_str()
        .expect("public_key")
        .to_owned();
    let _edge = topo.start_edge(&topo.write_edge_config(ALLOW_ALL)?)?;
    let body = b"through the tunnel from the profile".to_vec();
    let _http = HttpServer::start(&topo.dest, topo.dir.path(), DEST, HTTP_PORT, &body)?;
    let page = format!("http://{DEST}:{HTTP_PORT}/body");

    // connect: the profile comes from identity, the tunnel carries traffic.
    let forwarder = Forwarder::start(&topo.client, port)?;
    let mut connected = connect(&topo, &state)?;
    assert_eq!(
        http_get(&topo.client, &page, Duration::from_secs(10))?,
        body
    );
    let conf = std::fs::read_to_string(state.join("gatehouse.conf"))?;
    assert!(conf.contains("AllowedIPs = 10.202.0.0/24"), "{conf}");
    assert!(
        conf.contains(&format!("Endpoint = {EDGE_UNDERLAY}:{EDGE_PORT}")),
        "{conf}"
    );
    let mode = std::fs::metadata(state.join("gatehouse.conf"))?
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let status = status_json(&topo, &state)?;
    let login = &status["login"];
    assert_eq!(login["identity"], format!("{base}/"), "{status}");
    assert_eq!(login["user"]["email"], ALICE_EMAIL, "{status}");
    assert_eq!(login["user"]["login_method"], "pwd", "{status}");
    assert_eq!(login["device"]["id"], device_id.as_str(), "{status}");
    assert_eq!(login["device"]["hostname"], "e2e-laptop", "{status}");
    assert_eq!(
        login["edge"]["endpoint"],
        format!("{EDGE_UNDERLAY}:{EDGE_PORT}")
    );
    assert_eq!(login["edge"]["public_key"], topo.edge_public.as_str());
    assert_eq!(login["addresses"][0], format!("{CLIENT_TUNNEL}/32"));
    assert_eq!(login["posture"]["os"], "linux", "{status}");
    assert!(
        login["profile_updated_at"].is_u64(),
        "fetched at connect: {status}"
    );
    let tunnel = &status["tunnel"];
    assert_eq!(tunnel["up"], true, "{status}");
    assert_eq!(tunnel["peers"][0]["public_key"], topo.edge_public.as_str());
    assert!(tunnel["peers"][0]["latest_handshake"].is_u64(), "{status}");

    connected.stop()?;
    let log = connected.log();
    assert!(!log.contains(&token), "the device token is never logged");
    assert!(!log.contains("PrivateKey"), "the key is never logged");
    assert!(!log.contains("identity is unreachable"), "{log}");

    // Without identity the saved profile carries the tunnel, with a warning.
    drop(forwarder);
    let text = topo.client.run(&[
        &bin("gatehouse").to_string_lossy(),
        "status",
        "--state-dir",
        &state.to_string_lossy(),
        "--interface",
        &topo.client_tun,
    ])?;
    assert!(text.contains(&format!("user: {ALICE_EMAIL}")), "{text}");
    assert!(text.contains("tunnel: down"), "{text}");
    let mut offline = connect(&topo, &state)?;
    assert!(
        offline.log().contains("identity is unreachable"),
        "{}",
        offline.log()
    );
    assert_eq!(
        http_get(&topo.client, &page, Duration::from_secs(10))?,
        body
    );
    offline.stop()?;

    // A revoked device is refused and no tunnel comes up.
    admin(&identity_dir, &base, &["devices", "revoke", &device_id]);
    let _forwarder = Forwarder::start(&topo.client, port)?;
    let mut refused = spawn_connect(&topo, &state)?;
    let exit = refused.wait_exit(Duration::from_secs(20))?;
    let log = refused.log();
    assert!(
        !exit.success(),
        "connect with a revoked device must fail: {log}"
    );
    assert!(log.contains("run `gatehouse login` again"), "{log}");
    assert!(!log.contains(&token), "the device token is never logged");
    let socket = PathBuf::from(format!("/var/run/wireguard/{}.sock", topo.client_tun));
    assert!(!socket.exists(), "no tunnel for a revoked device");
    Ok(())
}

/// Starts `gatehouse-identity serve --embedded dir` on `127.0.0.1:port` with a pre-written
/// identity.toml whose one edge is the topology's edge and whose one route is the destination.
fn serve_embedded(topo: &Topology, dir: &Path, port: u16) -> anyhow::Result<Proc> {
    std::fs::DirBuilder::new().mode(0o700).create(dir)?;
    std::fs::write(
        dir.join("identity.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\n\
             database = \"identity.db\"\n\
             admin_token_file = \"admin.token\"\n\
             routes = [\"10.202.0.0/24\"]\n\
             dns = [\"10.0.0.53\"]\n\n\
             [[edges]]\nname = \"e2e-edge\"\nendpoint = \"{EDGE_UNDERLAY}:{EDGE_PORT}\"\n\
             public_key = {:?}\nregion = \"netns\"\n\n\
             [[providers]]\nid = \"local\"\nkind = \"local\"\ndisplay_name = \"Local accounts\"\n\
             users_file = \"users.toml\"\n",
            topo.edge_public
        ),
    )?;
    let mut command = Command::new(bin("gatehouse-identity"));
    command
        .arg("serve")
        .arg("--embedded")
        .arg(dir)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "identity=debug,info");
    let mut proc = Proc::spawn(
        command,
        "gatehouse-identity",
        &topo.dir.join("identity.log"),
    )?;
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    let up = wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        reqwest::blocking::get(&healthz).is_ok_and(|r| r.status().is_success())
            || !proc.is_running()
    });
    anyhow::ensure!(
        up && proc.is_running(),
        "identity did not start: {}",
        proc.log()
    );
    Ok(proc)
}

fn password_of(dir: &Path, email: &str) -> String {
    let text = std::fs::read_to_string(dir.join("passwords.txt")).expect("passwords.txt");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{email} ")).map(str::to_owned))
        .expect("password line")
}

/// Signs in at the built-in provider through the verification URL and approves the code.
fn approve_device_code(base: &str, url: &str, password: &str) {
    let browser = Browser::new().expect("browser");
    let Stop::Page(approval) = browser
        .login_through(url, ALICE_EMAIL, password, None)
        .expect("browser login")
    else {
        panic!("expected the approval page")
    };
    let user_code = url.rsplit('=').next().expect("code");
    assert!(approval.body.contains(user_code), "{}", approval.body);
    let approved = browser
        .client()
        .post(format!("{base}/device"))
        .form(&[("user_code", user_code), ("action", "approve")])
        .send()
        .expect("approve");
    assert_eq!(approved.status().as_u16(), 200);
}

fn admin(dir: &Path, base: &str, args: &[&str]) -> Value {
    let output = Command::new(bin("gatehouse-identity"))
        .arg("admin")
        .arg("--url")
        .arg(base)
        .arg("--token-file")
        .arg(dir.join("admin.token"))
        .args(args)
        .output()
        .expect("admin cli");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("admin json")
}

/// `gatehouse connect` (foreground) in the client namespace.
fn spawn_connect(topo: &Topology, state: &Path) -> anyhow::Result<Proc> {
    let log = topo
        .dir
        .join(format!("connect-{}.log", e2e::random_suffix(4)));
    topo.client.spawn_with_env(
        bin("gatehouse"),
        &[
            "connect",
            "--state-dir",
            &state.to_string_lossy(),
            "--interface",
            &topo.client_tun,
        ],
        &[("GATEHOUSE_LOG", "info")],
        &log,
    )
}

/// [`spawn_connect`], waiting until the tunnel's UAPI socket appears.
fn connect(topo: &Topology, state: &Path) -> anyhow::Result<Proc> {
    let mut proc = spawn_connect(topo, state)?;
    let socket = PathBuf::from(format!("/var/run/wireguard/{}.sock", topo.client_tun));
    if let Err(e) = wait_for_socket(&socket, Duration::from_secs(15)) {
        anyhow::bail!("connect did not come up ({e:#}): {}", proc.log());
    }
    assert!(proc.is_running(), "{}", proc.log());
    Ok(proc)
}

/// `gatehouse status --json` in the client namespace, once it shows a handshake with the edge.
fn status_json(topo: &Topology, state: &Path) -> anyhow::Result<Value> {
    let run = || -> anyhow::Result<Value> {
        let out = topo.client.run(&[
            &bin("gatehouse").to_string_lossy(),
            "status",
            "--json",
            "--state-dir",
            &state.to_string_lossy(),
            "--interface",
            &topo.client_tun,
        ])?;
        Ok(serde_json::from_str(&out)?)
    };
    let mut status = run()?;
    let handshook = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        if let Ok(fresh) = run() {
            status = fresh;
        }
        status["tunnel"]["peers"][0]["latest_handshake"].is_u64()
    });
    anyhow::ensure!(handshook, "no handshake in the status: {status}");
    Ok(status)
}

/// Accepts TCP on `127.0.0.1:port` inside a namespace and relays each connection to the same
/// address on the host; stops accepting and cuts open connections on `Drop`.
struct Forwarder {
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl Forwarder {
    fn start(netns: &Netns, port: u16) -> anyhow::Result<Forwarder> {
        let ns_file = File::open(format!("/var/run/netns/{}", netns.name()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn({
            let stop = stop.clone();
            let open = open.clone();
            move || {
                let listener = match listen_in(&ns_file, port) {
                    Ok(listener) => listener,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                relay(&listener, port, &stop, &open);
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(5))??;
        Ok(Forwarder {
            stop,
            open,
            thread: Some(thread),
        })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        for stream in self.open.lock().expect("lock").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Binds the listener inside the namespace, then returns this thread to the host namespace
/// (a socket stays in the namespace it was created in).
fn listen_in(ns_file: &File, port: u16) -> anyhow::Result<TcpListener> {
    let home = File::open("/proc/thread-self/ns/net")?;
    // SAFETY: setns on this thread only, with descriptors of namespace files held open here.
    if unsafe { libc::setns(ns_file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        anyhow::bail!("setns failed: {}", std::io::Error::last_os_error());
    }
    let listener = TcpListener::bind(("127.0.0.1", port));
    // SAFETY: as above.
    if unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        anyhow::bail!("setns back failed: {}", std::io::Error::last_os_error());
    }
    let listener = listener?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn relay(listener: &TcpListener, port: u16, stop: &AtomicBool, open: &Mutex<Vec<TcpStream>>) {
    while !stop.load(Ordering::SeqCst) {
        let inbound = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(_) => return,
        };
        let Ok(outbound) = TcpStream::connect(("127.0.0.1", port)) else {
            continue;
        };
        let _ = inbound.set_nonblocking(false);
        let (Ok(in_copy), Ok(out_copy)) = (inbound.try_clone(), outbound.try_clone()) else {
            continue;
        };
        if let (Ok(a), Ok(b)) = (inbound.try_clone(), outbound.try_clone()) {
            open.lock().expect("lock").extend([a, b]);
        }
        pipe(in_copy, outbound);
        pipe(out_copy, inbound);
    }
}

/// Copies `from` to `to` on a thread, then closes `to`'s write side.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}
