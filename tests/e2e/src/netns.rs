//! [`Netns`]: a named network namespace owned by a test, and links between namespaces.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::proc::Proc;

/// How long `Drop` waits after SIGTERM for the namespace's processes before SIGKILL.
const DROP_GRACE: Duration = Duration::from_secs(2);

/// A network namespace `<prefix>-<6 random characters>` with `lo` up, deleted on `Drop`.
///
/// `Drop` first stops every process still inside the namespace (as listed by `ip netns pids`:
/// SIGTERM, SIGKILL after 2 s), since a daemon whose namespace is deleted keeps running
/// (wireguard-go does), then deletes the namespace.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace and brings its loopback up.
    ///
    /// # Errors
    /// If `ip netns add` fails (not root?) or `lo` cannot be brought up.
    pub fn new(prefix: &str) -> anyhow::Result<Netns> {
        let name = format!("{prefix}-{}", crate::random_suffix(6));
        ip(&["netns", "add", &name])?;
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on a new thread inside the namespace (threads it starts, such as a blocking
    /// HTTP client's, are inside too), for test code that talks to services there.
    ///
    /// # Errors
    /// The namespace cannot be entered, or `f` panicked.
    pub fn in_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        use std::os::fd::AsRawFd as _;
        let file = std::fs::File::open(format!("/var/run/netns/{}", self.name))
            .with_context(|| format!("failed to open namespace {}", self.name))?;
        let thread = std::thread::spawn(move || {
            // SAFETY: setns on this thread only, with a descriptor of a namespace file this
            // closure owns.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(anyhow::anyhow!(
                    "setns failed: {}",
                    std::io::Error::last_os_error()
                ));
            }
            Ok(f())
        });
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("the thread in {} panicked", self.name))?
    }

    /// Runs `args` (program first) inside the namespace and returns its output, whatever the exit
    /// status. If the program cannot be started at all, the output has exit status 127 and the
    /// error in `stderr`.
    pub fn exec(&self, args: &[&str]) -> Output {
        self.exec_with_stdin(args, None)
    }

    /// Like [`Netns::exec`], but fails unless the program exits with 0.
    ///
    /// # Errors
    /// A non-zero exit, with the command line and its stderr; returns stdout on success.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        checked(args, self.exec(args))
    }

    /// Like [`Netns::run`], with `input` written to the program's stdin (for secrets such as
    /// `wg set … private-key /dev/stdin`).
    ///
    /// # Errors
    /// A non-zero exit, with the command line and its stderr.
    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> anyhow::Result<String> {
        checked(args, self.exec_with_stdin(args, Some(input)))
    }

    /// Runs `ip -n <ns> args…` (no `ip netns exec` needed for plain `ip` commands).
    ///
    /// # Errors
    /// A non-zero exit, with its stderr.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// Starts `program args…` in the namespace, stdout and stderr to `log_path`.
    ///
    /// # Errors
    /// If the process cannot be started.
    pub fn spawn(
        &self,
        program: impl AsRef<OsStr>,
        args: &[&str],
        log_path: &Path,
    ) -> anyhow::Result<Proc> {
        self.spawn_with_env(program, args, &[], log_path)
    }

    /// Like [`Netns::spawn`], with extra environment variables.
    ///
    /// # Errors
    /// If the process cannot be started.
    pub fn spawn_with_env(
        &self,
        program: impl AsRef<OsStr>,
        args: &[&str],
        env: &[(&str, &str)],
        log_path: &Path,
    ) -> anyhow::Result<Proc> {
        let program = program.as_ref();
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name])
            .arg(program)
            .args(args)
            .envs(env.iter().copied());
        let base = Path::new(program)
            .file_name()
            .unwrap_or(program)
            .to_string_lossy();
        Proc::spawn(command, &format!("{base}@{}", self.name), log_path)
    }

    /// Adds a route: `ip route replace <dest> via <gateway>`.
    ///
    /// # Errors
    /// If `ip` fails.
    pub fn route_via(&self, dest: &str, gateway: &str) -> anyhow::Result<()> {
        self.ip(&["route", "replace", dest, "via", gateway])
            .map(drop)
    }

    /// Adds a route out of an interface: `ip route replace <dest> dev <ifname>`.
    ///
    /// # Errors
    /// If `ip` fails.
    pub fn route_dev(&self, dest: &str, ifname: &str) -> anyhow::Result<()> {
        self.ip(&["route", "replace", dest, "dev", ifname])
            .map(drop)
    }

    /// Sets the default route via `gateway`.
    ///
    /// # Errors
    /// If `ip` fails.
    pub fn default_route(&self, gateway: &str) -> anyhow::Result<()> {
        self.route_via("default", gateway)
    }

    /// Turns on IPv4 (and IPv6) forwarding in this namespace only.
    ///
    /// # Errors
    /// If `sysctl` fails.
    pub fn enable_forwarding(&self) -> anyhow::Result<()> {
        self.run(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
        self.run(&["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"])?;
        Ok(())
    }

    /// The ids of the processes inside this namespace.
    ///
    /// # Errors
    /// If `ip netns pids` fails.
    pub fn pids(&self) -> anyhow::Result<Vec<libc::pid_t>> {
        let out = ip(&["netns", "pids", &self.name])?;
        Ok(out
            .split_whitespace()
            .filter_map(|pid| pid.parse().ok())
            .filter(|&pid| pid > 1)
            .collect())
    }

    fn exec_with_stdin(&self, args: &[&str], input: Option<&[u8]>) -> Output {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        run_command(command, input)
    }

    /// Stops every process in the namespace: SIGTERM, then SIGKILL after the grace period.
    fn kill_all(&self) -> anyhow::Result<()> {
        let pids = self.pids()?;
        if pids.is_empty() {
            return Ok(());
        }
        signal_all(&pids, libc::SIGTERM);
        let deadline = Instant::now() + DROP_GRACE;
        while Instant::now() < deadline {
            if self.pids()?.is_empty() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal_all(&self.pids()?, libc::SIGKILL);
        Ok(())
    }
}

impl Drop for Netns {
    #[allow(clippy::print_stderr)] // Cleanup failures must be visible in the test output.
    fn drop(&mut self) {
        if let Err(err) = self.kill_all() {
            eprintln!("e2e: failed to stop processes in {}: {err:#}", self.name);
        }
        if let Err(err) = ip(&["netns", "del", &self.name]) {
            eprintln!("e2e: failed to delete namespace {}: {err:#}", self.name);
        }
    }
}

/// Joins `a` and `b` with a veth pair, addresses each end (`a_addr` and `b_addr` in CIDR
/// notation, e.g. `10.201.0.1/24`) and brings both up. Returns the interface names `(in a, in b)`.
///
/// # Errors
/// If any `ip` command fails.
pub fn veth(a: &Netns, a_addr: &str, b: &Netns, b_addr: &str) -> anyhow::Result<(String, String)> {
    let a_if = crate::ifname("v");
    let b_if = crate::ifname("v");
    a.ip(&[
        "link", "add", &a_if, "type", "veth", "peer", "name", &b_if, "netns", &b.name,
    ])?;
    a.ip(&["addr", "add", a_addr, "dev", &a_if])?;
    b.ip(&["addr", "add", b_addr, "dev", &b_if])?;
    a.ip(&["link", "set", &a_if, "up"])?;
    b.ip(&["link", "set", &b_if, "up"])?;
    Ok((a_if, b_if))
}

/// Applies a netem qdisc on `ifname` in `netns` (egress only), e.g. `"delay 20ms loss 1%"`.
/// Replaces any netem set before; apply it on both ends for symmetric impairment.
///
/// Some test hosts run a kernel built without `CONFIG_NET_SCH_NETEM`: check [`netem_supported`]
/// first, and use [`drop_randomly`] for loss alone where netem is missing.
///
/// # Errors
/// If `tc` fails, saying so plainly when the kernel lacks netem.
pub fn netem(netns: &Netns, ifname: &str, spec: &str) -> anyhow::Result<()> {
    let mut args = vec!["tc", "qdisc", "replace", "dev", ifname, "root", "netem"];
    args.extend(spec.split_whitespace());
    netns.run(&args).map(drop).map_err(|err| {
        if format!("{err}").contains("qdisc kind is unknown") {
            err.context("this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is not set)")
        } else {
            err
        }
    })
}

/// Whether the running kernel has the netem qdisc (probed once, in a throwaway namespace).
pub fn netem_supported() -> bool {
    static PROBE: OnceLock<bool> = OnceLock::new();
    *PROBE.get_or_init(|| {
        Netns::new("ghnetem")
            .and_then(|netns| netem(&netns, "lo", "delay 1ms"))
            .is_ok()
    })
}

/// Drops `percent` % of the packets leaving `ifname` in `netns`, at random, with an nftables
/// rule (`numgen random mod 100 < percent drop` in a postrouting filter chain). Loss without
/// netem; calling it again on the same interface adds to the loss.
///
/// # Errors
/// If `percent` is over 100 or `nft` fails.
pub fn drop_randomly(netns: &Netns, ifname: &str, percent: u8) -> anyhow::Result<()> {
    if percent > 100 {
        bail!("loss of {percent}% is over 100%");
    }
    let ruleset = format!(
        "table inet e2e_loss {{\n\
         \tchain postrouting {{\n\
         \t\ttype filter hook postrouting priority 0; policy accept;\n\
         \t\toifname \"{ifname}\" numgen random mod 100 < {percent} drop\n\
         \t}}\n\
         }}\n"
    );
    netns
        .run_with_stdin(&["nft", "-f", "-"], ruleset.as_bytes())
        .map(drop)
}

/// Runs `ip args…` in the host namespace, failing with its stderr.
fn ip(args: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new("ip");
    command.args(args).stdin(Stdio::null());
    let mut full = vec!["ip"];
    full.extend_from_slice(args);
    checked(&full, run_command(command, None))
}

fn run_command(mut command: Command, input: Option<&[u8]>) -> Output {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let result = command.spawn().and_then(|mut child| {
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            // A program that exits without reading its stdin is reported by its exit status.
            let _ = stdin.write_all(input);
        }
        child.wait_with_output()
    });
    result.unwrap_or_else(|err| Output {
        status: ExitStatus::from_raw(127 << 8),
        stdout: Vec::new(),
        stderr: format!("failed to start {command:?}: {err}").into_bytes(),
    })
}

fn checked(args: &[&str], output: Output) -> anyhow::Result<String> {
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        bail!(
            "`{}` failed ({}): {} {}",
            args.join(" "),
            output.status,
            stderr.trim(),
            stdout.trim()
        );
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{}`: non-UTF-8", args.join(" ")))
}

fn signal_all(pids: &[libc::pid_t], signal: libc::c_int) {
    for &pid in pids {
        // SAFETY: kill has no memory-safety preconditions; `pid` was just listed inside a
        // namespace this test created, so it is one of the test's processes.
        unsafe { libc::kill(pid, signal) };
    }
}
