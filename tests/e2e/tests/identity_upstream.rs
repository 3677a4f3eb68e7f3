//! Upstream group re-sync end to end: identity's only provider is the npm `oidc-provider`
//! with `sync_groups`; alice logs in there (device grant, consent for `offline_access`), enrolls,
//! and her WireGuard client reaches the echo application that group `engineering` may use.
//! Removing `engineering` from alice at the provider and syncing (the admin route, the CLI's
//! `admin users sync`) closes her live flow and refuses new ones; deleting alice at the
//! provider makes the next refresh fail with `invalid_grant`, which revokes her device and
//! removes the edge's peer.

use e2e::gatehouse::DEST;
use e2e::oidc::ALICE;
use e2e::zero_trust::{ZeroTrust, CONNECT_PROBE, ECHO_SERVER, LIVE_FLOW};
use e2e::{skip_unless_node, skip_unless_root, wait_until};
use serde_json::Value;
use std::time::Duration;

const ECHO_PORT: u16 = 9000;
const CLOSED_PORT: u16 = 9001;

/// Group `engineering` may reach the echo port; nothing else is covered (denied by default).
const POLICY: &str = r#"
version = 1
[[applications]]
name = "echo"
destinations = [{ cidr = "10.202.0.2/32", ports = [9000], protocol = "tcp" }]
[[applications.policies]]
name = "engineering"
action = "allow"
include = [{ group = "engineering" }]
"#;

#[test]
fn a_group_removed_at_the_provider_closes_the_live_flow_and_invalid_grant_revokes_the_device(
) -> anyhow::Result<()> {
    skip_unless_root!(Ok(()));
    skip_unless_node!(Ok(()));
    // A long interval: only the admin trigger syncs, so each step is the test's doing.
    let mut world = ZeroTrust::with_upstream("zt-upstream", POLICY, "1h")?;
    let topo = &world.topo;
    let mut echo = topo.dest.spawn(
        "python3",
        &[
            "-u",
            "-c",
            ECHO_SERVER,
            DEST,
            &ECHO_PORT.to_string(),
            &CLOSED_PORT.to_string(),
        ],
        &topo.dir.join("echo.log"),
    )?;
    echo.wait_for_log("ready", Duration::from_secs(10))?;
    let probe = |port: u16| {
        topo.client
            .run(&["python3", "-c", CONNECT_PROBE, DEST, &port.to_string()])
            .map(|s| s.trim().to_owned())
    };

    // The login went through the upstream provider, with its groups and a refresh token.
    let users: Value = serde_json::from_str(&world.admin(&["users", "list"])?)?;
    let alice = &users["users"][0];
    anyhow::ensure!(
        alice["email"] == ALICE.email && alice["idp"] == "corp",
        "{users}"
    );
    anyhow::ensure!(
        alice["groups"] == serde_json::json!(["admins", "engineering"]),
        "{users}"
    );
    let identity_log = world.identity.log();
    anyhow::ensure!(
        !identity_log.contains("no refresh token"),
        "the provider gave a refresh token:\n{identity_log}"
    );

    // Allowed and denied before any change.
    anyhow::ensure!(
        probe(CLOSED_PORT)? == "reset",
        "uncovered port\nedge log:\n{}",
        world.edge.log()
    );
    let mut flow = topo.client.spawn(
        "python3",
        &["-u", "-c", LIVE_FLOW, DEST, &ECHO_PORT.to_string()],
        &topo.dir.join("flow.log"),
    )?;
    flow.wait_for_log("flowing", Duration::from_secs(15))
        .map_err(|e| anyhow::anyhow!("{e:#}\nedge log:\n{}", world.edge.log()))?;

    // An unchanged sync changes nothing and keeps the flow.
    let same: Value = serde_json::from_str(&world.admin(&["users", "sync", ALICE.email])?)?;
    anyhow::ensure!(same["grants"][0]["result"] == "unchanged", "{same}");
    anyhow::ensure!(!flow.log().contains("closed"), "{}", flow.log());

    // The IdP admin removes `engineering`; the sync picks it up.
    let provider = world.provider.take().expect("upstream provider");
    let provider = topo.edge.in_thread(move || {
        provider
            .set_groups(ALICE.username, &["admins"])
            .map(|()| provider)
    })??;
    let synced: Value = serde_json::from_str(&world.admin(&["users", "sync", ALICE.email])?)?;
    anyhow::ensure!(
        synced["before"] == serde_json::json!(["admins", "engineering"])
            && synced["after"] == serde_json::json!(["admins"])
            && synced["grants"][0]["result"] == "updated",
        "{synced}\nidentity log:\n{}",
        world.identity.log()
    );
    let closed = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        flow.log().contains("closed")
    });
    anyhow::ensure!(
        closed && flow.log().contains("closed ConnectionResetError"),
        "the live flow survived the group removal:\n{}\nedge log:\n{}",
        flow.log(),
        world.edge.log()
    );
    anyhow::ensure!(probe(ECHO_PORT)? == "reset", "a new flow after the removal");

    // alice is deleted at the provider: the refresh answers invalid_grant, her device goes.
    let provider = topo
        .edge
        .in_thread(move || provider.remove_account(ALICE.username).map(|()| provider))??;
    let refused: Value = serde_json::from_str(&world.admin(&["users", "sync", ALICE.email])?)?;
    anyhow::ensure!(
        refused["grants"][0]["result"] == "revoked"
            && refused["grants"][0]["revoked_devices"] == serde_json::json!([world.device_id]),
        "{refused}"
    );
    world
        .edge
        .wait_for_log("removed=1", Duration::from_secs(10))?;
    anyhow::ensure!(probe(ECHO_PORT)? == "timeout", "after invalid_grant");
    // The grant is gone: nothing left to sync.
    let again = world.admin(&["users", "sync", ALICE.email]);
    anyhow::ensure!(again.is_err(), "{again:?}");
    world.provider = Some(provider);
    Ok(())
}
