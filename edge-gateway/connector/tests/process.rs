//! `gatehouse-connector run` as a process: SIGHUP reloads, SIGTERM drains and exits 0. The
//! configured edge does not answer, so the transport keeps re-dialing meanwhile.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn config(dir: &std::path::Path) -> String {
    format!(
        "metrics: 127.0.0.1:0\ngrace-period: 5s\ncredentials-file: {dir}/credentials.json\n\
         edge-ca-file: {dir}/edge-ca.pem\nedges: [\"127.0.0.1:9\"]\n\
         ingress:\n  - service: http_status:404\n",
        dir = dir.display()
    )
}

fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for a stderr line containing `needle`.
fn wait_for(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no log line containing {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

#[test]
fn sighup_reloads_and_sigterm_drains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config(dir.path())).unwrap();
    let ca = tunnel::ca::DeploymentCa::generate().unwrap();
    std::fs::write(dir.path().join("edge-ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(
        dir.path().join("credentials.json"),
        r#"{"TunnelID":"t1","ConnectorID":"c1","Credential":"eyJ.e30.sig"}"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse-connector"))
        .arg("--config")
        .arg(&path)
        .arg("run")
        .env("GATEHOUSE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });

    wait_for(&lines, "connector started");
    kill(child.id(), "-HUP");
    wait_for(&lines, "configuration reloaded");
    kill(child.id(), "-TERM");
    wait_for(&lines, "draining");
    wait_for(&lines, "drained; exiting");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
