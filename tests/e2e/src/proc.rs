//! [`Proc`]: a child process owned by a test, its output in a log file.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long `Drop` waits after SIGTERM before SIGKILL.
const DROP_GRACE: Duration = Duration::from_secs(2);
/// How long [`Proc::stop`] waits after SIGTERM before SIGKILL: long enough for a clean shutdown
/// of a daemon that closes its tunnels.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lines of each log printed when a test panics.
const LOG_TAIL_LINES: usize = 60;

/// A running child process with stdout and stderr appended to one log file.
///
/// The child leads its own process group, and signals go to the group, so helpers it forks stop
/// with it. On `Drop` it gets SIGTERM, then SIGKILL after 2 s, and is reaped. If the test thread is
/// panicking, `Drop` also prints the last 60 lines of the log to stderr.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    label: String,
    log_path: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `command` with stdin closed and stdout and stderr appended to `log_path`.
    /// `label` names the process in messages.
    ///
    /// # Errors
    /// If the log file cannot be created or the program cannot be started.
    pub fn spawn(mut command: Command, label: &str, log_path: &Path) -> anyhow::Result<Proc> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("failed to open log {}", log_path.display()))?;
        let log_err = log.try_clone().context("failed to clone log handle")?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("failed to start {label}: {command:?}"))?;
        Ok(Proc {
            child,
            label: label.to_owned(),
            log_path: log_path.to_owned(),
            status: None,
        })
    }

    /// The child's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name given at spawn.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Where stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The log so far (lossy UTF-8; empty if it cannot be read).
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The exit status if the process has exited, reaping it.
    ///
    /// # Errors
    /// If `waitpid` fails.
    pub fn try_status(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .with_context(|| format!("failed to poll {}", self.label))?;
        }
        Ok(self.status)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_status(), Ok(None))
    }

    /// Waits until the log contains `needle`, failing early if the process exits.
    ///
    /// # Errors
    /// On timeout or exit, with the log's tail.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.try_status()? {
                bail!(
                    "{} exited ({status}) before logging {needle:?}; log tail:\n{}",
                    self.label,
                    tail(&self.log(), LOG_TAIL_LINES)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not log {needle:?} within {timeout:?}; log tail:\n{}",
                    self.label,
                    tail(&self.log(), LOG_TAIL_LINES)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to the process group (a no-op once the process has been reaped).
    ///
    /// # Errors
    /// If `kill(2)` fails for a reason other than the group being gone.
    pub fn signal(&mut self, signal: libc::c_int) -> anyhow::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        let pgid = libc::pid_t::try_from(self.pid()).context("pid out of range")?;
        // SAFETY: kill has no memory-safety preconditions. The group is ours: the child leads it
        // and is not reaped yet (status is None), so its id cannot have been reused.
        let rc = unsafe { libc::kill(-pgid, signal) };
        let err = std::io::Error::last_os_error();
        if rc != 0 && err.raw_os_error() != Some(libc::ESRCH) {
            bail!("failed to signal {}: {err}", self.label);
        }
        Ok(())
    }

    /// SIGTERM, then waits (SIGKILL after 10 s) and returns the exit status. Idempotent.
    ///
    /// # Errors
    /// If signalling or waiting fails.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        self.terminate(STOP_GRACE)
    }

    /// Waits for the process to exit by itself, SIGKILL after `timeout`.
    ///
    /// # Errors
    /// If waiting fails or the timeout passes (the process is killed then).
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.wait_with_deadline(Instant::now() + timeout)? {
            return Ok(status);
        }
        self.signal(libc::SIGKILL)?;
        let _ = self.wait_with_deadline(Instant::now() + DROP_GRACE)?;
        bail!("{} did not exit within {timeout:?}", self.label)
    }

    /// User plus system CPU time the process has used so far, from `/proc/<pid>/stat`.
    ///
    /// # Errors
    /// If the process is gone or the file cannot be parsed.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .with_context(|| format!("failed to read stat of {}", self.label))?;
        // The command name (field 2) may contain spaces; fields after its closing parenthesis
        // are space-separated, utime and stime being fields 14 and 15 (proc(5)).
        let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |index: usize| -> anyhow::Result<u64> {
            fields
                .get(index)
                .and_then(|field| field.parse().ok())
                .context("malformed /proc/<pid>/stat")
        };
        // Fields 14 and 15 are at indexes 11 and 12 after the command name.
        let total = ticks(11)? + ticks(12)?;
        // SAFETY: sysconf has no preconditions.
        let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
            .ok()
            .filter(|&hz| hz > 0)
            .unwrap_or(100);
        Ok(Duration::from_micros(total * 1_000_000 / hz))
    }

    fn terminate(&mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.try_status()? {
            return Ok(status);
        }
        self.signal(libc::SIGTERM)?;
        if let Some(status) = self.wait_with_deadline(Instant::now() + grace)? {
            return Ok(status);
        }
        self.signal(libc::SIGKILL)?;
        let status = self
            .child
            .wait()
            .with_context(|| format!("failed to wait for {}", self.label))?;
        self.status = Some(status);
        Ok(status)
    }

    fn wait_with_deadline(&mut self, deadline: Instant) -> anyhow::Result<Option<ExitStatus>> {
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    #[allow(clippy::print_stderr)] // Cleanup failures and logs of a failed test go to the output.
    fn drop(&mut self) {
        if let Err(err) = self.terminate(DROP_GRACE) {
            eprintln!("e2e: failed to stop {}: {err:#}", self.label);
        }
        if std::thread::panicking() {
            eprintln!(
                "----- last {LOG_TAIL_LINES} lines of {} ({}) -----\n{}\n----- end of {} -----",
                self.label,
                self.log_path.display(),
                tail(&self.log(), LOG_TAIL_LINES),
                self.label
            );
        }
    }
}

/// The last `lines` lines of `text`.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }
}
