//! `gatehouse-connector run`: loads the configuration, serves `/ready` and `/metrics`, runs the
//! transport, reloads the file when it changes or on SIGHUP, and drains on SIGTERM/SIGINT as
//! [`Lifecycle`] decides.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};

use crate::lifecycle::{Action, ExitReason, Input, Lifecycle, Signal};
use crate::live_config::{ConfigSource, CONFIG_POLL_INTERVAL};
use crate::metrics::Metrics;
use crate::origin::OriginDialer;
use crate::transport::{DrainSignal, Transport, TransportContext};
use crate::{live_config, local_http};

/// How `run` is set up (from the command line).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The `config.yml` to load and watch.
    pub config_path: PathBuf,
    /// How often the file is checked for changes; [`CONFIG_POLL_INTERVAL`] by default.
    pub poll_interval: Duration,
}

impl RunOptions {
    /// Watches `config_path` every [`CONFIG_POLL_INTERVAL`].
    pub fn new(config_path: PathBuf) -> Self {
        Self {
            config_path,
            poll_interval: CONFIG_POLL_INTERVAL,
        }
    }
}

/// Runs the connector with `transport` until it drains, the grace period runs out, a second
/// shutdown signal arrives, or the transport stops on its own.
///
/// # Errors
/// The configuration is invalid at start, the metrics address cannot be bound, signal handlers
/// cannot be installed, or the transport stopped unasked (its error, or a generic one).
pub async fn run(options: RunOptions, transport: impl Transport) -> anyhow::Result<ExitReason> {
    let (mut source, config) = ConfigSource::load(&options.config_path)?;
    let metrics = Arc::new(Metrics::new());
    let origins = OriginDialer::new();
    let startup = config.current();

    let (local_http, serve) = local_http::bind(
        startup.metrics,
        Arc::clone(&metrics),
        std::future::pending(),
    )
    .await?;
    let local_http_task = AbortOnDrop(tokio::spawn(async move {
        if let Err(error) = serve.await {
            tracing::error!("{error:#}");
        }
    }));
    tracing::info!(address = %local_http, "serving /ready and /metrics");

    let mut signals = Signals::install()?;
    let (drain_handle, drain) = DrainSignal::new();
    let context = TransportContext {
        config,
        metrics: Arc::clone(&metrics),
        origins: origins.clone(),
        drain,
        local_http,
    };
    let mut transport_task = AbortOnDrop(tokio::spawn(transport.run(context)));
    tracing::info!(rules = startup.ingress.rule_count(), "connector started");
    drop(startup);

    let mut lifecycle = Lifecycle::default();
    let mut poll = tokio::time::interval(options.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.tick().await;
    let grace = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(grace);
    let mut draining = false;
    let mut transport_result = None;

    loop {
        let input = tokio::select! {
            signal = signals.next() => Input::Signal(signal),
            result = &mut transport_task.0, if transport_result.is_none() => {
                let result = result.context("the transport panicked").and_then(|r| r);
                if let Err(error) = &result {
                    tracing::error!("the transport failed: {error:#}");
                }
                transport_result = Some(result);
                Input::TransportFinished
            }
            () = &mut grace, if draining => Input::GraceExpired,
            _ = poll.tick() => {
                if let Some(live_config::Reload::Applied) = source.poll(&metrics) {
                    origins.forget_tls_configs();
                }
                continue;
            }
        };
        match lifecycle.handle(input) {
            Action::Continue => {}
            Action::Reload => {
                if let live_config::Reload::Applied = source.reload(&metrics) {
                    origins.forget_tls_configs();
                }
            }
            Action::StartDrain => {
                let period = source.current().grace_period;
                tracing::info!(
                    grace_period = ?period,
                    "draining: in-flight streams may finish; send the signal again to exit now"
                );
                drain_handle.start();
                grace.as_mut().reset(tokio::time::Instant::now() + period);
                draining = true;
            }
            Action::Exit(reason) => {
                drop(local_http_task);
                return finish(reason, transport_result);
            }
        }
    }
}

fn finish(
    reason: ExitReason,
    transport_result: Option<anyhow::Result<()>>,
) -> anyhow::Result<ExitReason> {
    match reason {
        ExitReason::Drained => tracing::info!("drained; exiting"),
        ExitReason::GraceExpired => {
            tracing::warn!("the grace period ran out with streams still open; exiting");
        }
        ExitReason::Forced => tracing::warn!("second shutdown signal; exiting now"),
        ExitReason::TransportStopped => {
            return match transport_result {
                Some(Err(error)) => Err(error),
                Some(Ok(())) | None => Err(anyhow::anyhow!("the transport stopped unasked")),
            };
        }
    }
    Ok(reason)
}

/// SIGHUP, SIGINT and SIGTERM as one stream of [`Signal`]s.
struct Signals {
    hangup: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self {
            hangup: signal(SignalKind::hangup()).context("failed to watch SIGHUP")?,
            interrupt: signal(SignalKind::interrupt()).context("failed to watch SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("failed to watch SIGTERM")?,
        })
    }

    /// The next signal. A stream ends only when the runtime shuts down; that case waits forever.
    async fn next(&mut self) -> Signal {
        tokio::select! {
            Some(()) = self.hangup.recv() => Signal::Hangup,
            Some(()) = self.interrupt.recv() => Signal::Interrupt,
            Some(()) = self.terminate.recv() => Signal::Terminate,
            else => std::future::pending().await,
        }
    }
}

/// Aborts a spawned task when dropped, so nothing outlives `run`.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
