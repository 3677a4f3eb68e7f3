//! The revocation benchmark behind `bench/revocation.sh`: how long from the admin API call
//! that takes access away to the moment the device's live TCP flow is closed (the client's
//! socket sees the edge's reset), with real processes: embedded identity, an edge following
//! its feed, an enrolled WireGuard client (see `e2e::zero_trust`).
//!
//! Each round opens a flow (a byte every 20 ms, echoed), then applies a policy without the
//! user's access (`POST /admin/v1/policy`) and waits for the flow to close; the next round
//! applies the allowing policy again. A last round revokes the device itself
//! (`POST /admin/v1/devices/<id>/revoke`), which also removes its WireGuard peer.
//! Prints every round, then `revocation: p50_ms=<x> max_ms=<y>` over the policy rounds.
//! Root only (namespaces). `REVOCATIONS` sets the number of policy rounds (default 20).

#![allow(clippy::print_stdout)] // A benchmark: its figures are its output.

use anyhow::Context as _;
use e2e::gatehouse::DEST;
use e2e::zero_trust::{ZeroTrust, ECHO_SERVER, LIVE_FLOW};
use e2e::{wait_until, Proc};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ECHO_PORT: &str = "9000";

fn policy(email: &str) -> String {
    format!(
        "version = 1\n[[applications]]\nname = \"echo\"\n\
         destinations = [{{ cidr = \"{DEST}/32\", ports = [9000], protocol = \"tcp\" }}]\n\
         [[applications.policies]]\nname = \"who\"\naction = \"allow\"\n\
         include = [{{ email = \"{email}\" }}]\n"
    )
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// `POST <path>` on identity's admin API from inside the edge namespace; returns the time just
/// before the request was sent (ms since the epoch).
fn admin_post(world: &ZeroTrust, path: &str, body: serde_json::Value) -> anyhow::Result<f64> {
    let token = std::fs::read_to_string(world.state.join("admin.token"))?
        .trim()
        .to_owned();
    let url = format!("http://127.0.0.1:18080{path}");
    world.topo.edge.in_thread(move || -> anyhow::Result<f64> {
        let http = reqwest::blocking::Client::new();
        let request = http.post(&url).bearer_auth(&token).json(&body);
        let started = now_ms();
        let response = request.send()?;
        anyhow::ensure!(
            response.status().is_success(),
            "{url}: {} {}",
            response.status(),
            response.text().unwrap_or_default()
        );
        Ok(started)
    })?
}

fn apply(world: &ZeroTrust, email: &str) -> anyhow::Result<f64> {
    admin_post(
        world,
        "/admin/v1/policy",
        json!({ "format": "toml", "source": policy(email), "file_name": "bench.toml" }),
    )
}

/// Starts a live flow and waits until it carries data.
fn live_flow(world: &ZeroTrust, round: usize) -> anyhow::Result<Proc> {
    let log = world.topo.dir.join(format!("flow-{round}.log"));
    let mut flow =
        world
            .topo
            .client
            .spawn("python3", &["-u", "-c", LIVE_FLOW, DEST, ECHO_PORT], &log)?;
    flow.wait_for_log("flowing", Duration::from_secs(15))?;
    Ok(flow)
}

/// Waits for the flow's `closed <kind> <ms>` line; returns the close time.
fn closed_at(flow: &Proc) -> anyhow::Result<(String, f64)> {
    let closed = wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
        flow.log().contains("closed")
    });
    anyhow::ensure!(
        closed,
        "the flow was not closed within 10 s:\n{}",
        flow.log()
    );
    let log = flow.log();
    let line = log
        .lines()
        .find(|l| l.starts_with("closed"))
        .context("closed line")?;
    let mut parts = line.split_whitespace().skip(1);
    let kind = parts.next().unwrap_or_default().to_owned();
    let at: f64 = parts.next().unwrap_or_default().parse()?;
    Ok((kind, at))
}

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("REVOCATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .max(1);
    let world = ZeroTrust::new("bench-revocation", &policy("alice@example.com"))?;
    let echo_log = world.topo.dir.join("echo.log");
    let mut echo = world.topo.dest.spawn(
        "python3",
        &["-u", "-c", ECHO_SERVER, DEST, ECHO_PORT, "9001"],
        &echo_log,
    )?;
    echo.wait_for_log("ready", Duration::from_secs(10))?;

    let mut latencies = Vec::with_capacity(rounds);
    for round in 0..rounds {
        if round > 0 {
            apply(&world, "alice@example.com")?;
        }
        let mut flow = live_flow(&world, round)?;
        let sent = apply(&world, "nobody@example.com")?;
        let (kind, at) = closed_at(&flow)?;
        anyhow::ensure!(kind == "ConnectionResetError", "closed by {kind}");
        let ms = at - sent;
        println!("round {round:2}: policy change -> flow reset in {ms:7.2} ms");
        latencies.push(ms);
        let _ = flow.stop();
    }

    apply(&world, "alice@example.com")?;
    let mut flow = live_flow(&world, rounds)?;
    let sent = admin_post(
        &world,
        &format!("/admin/v1/devices/{}/revoke", world.device_id),
        json!({}),
    )?;
    let (kind, at) = closed_at(&flow)?;
    println!(
        "device revocation -> flow closed ({kind}) in {:.2} ms (includes the 100 ms reset grace before the peer is removed)",
        at - sent
    );
    let _ = flow.stop();

    latencies.sort_by(f64::total_cmp);
    let p50 = latencies[latencies.len() / 2];
    let max = latencies[latencies.len() - 1];
    println!("rounds={rounds} min_ms={:.2}", latencies[0]);
    println!("revocation: p50_ms={p50:.2} max_ms={max:.2}");
    Ok(())
}
