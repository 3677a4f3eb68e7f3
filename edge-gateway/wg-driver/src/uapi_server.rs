//! The UAPI socket server: `/var/run/wireguard/<interface>.sock`, where `wg(8)` and other
//! cross-platform WireGuard tools configure a userspace implementation.
//!
//! The server accepts connections and reads requests in its own tasks; the owner (a binary's
//! event loop, which owns the `wg` node) pulls one [`UapiCall`] at a time with
//! [`UapiServer::next`] and answers it. Malformed requests never reach the owner: the server
//! answers them with the `errno` of their [`UapiError`]. The text protocol itself is the sans-IO
//! [`wg::uapi`] module.

use anyhow::{bail, Context as _};
use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{
    DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader,
};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, error, trace, warn};
use wg::uapi::{parse_request, Request, UapiError};

/// Where wireguard-go and `wg(8)` put UAPI sockets on Linux (wireguard-tools' `RUNSTATEDIR`).
pub const SOCKET_DIR: &str = "/var/run/wireguard";

/// A listening UAPI socket. Dropping it stops serving and removes the socket file.
#[derive(Debug)]
pub struct UapiServer {
    path: PathBuf,
    /// Device and inode of the socket file this server bound, so that `Drop` never removes a
    /// socket another process bound at the same path afterwards.
    file_id: (u64, u64),
    calls: mpsc::Receiver<UapiCall>,
    accept_task: JoinHandle<()>,
    accept_task_gone: bool,
}

/// One well-formed request, waiting for the owner's answer. Dropping it unanswered answers
/// `EIO`.
#[derive(Debug)]
pub struct UapiCall {
    /// What the client asks; the owner may take it out (e.g. with `std::mem::replace`) before
    /// answering, since the answer's format depends only on the original operation.
    pub request: Request,
    operation: Operation,
    reply: oneshot::Sender<String>,
}

impl UapiServer {
    /// Binds `/var/run/wireguard/<interface>.sock`, creating the directory (mode 0755) if needed.
    ///
    /// A socket file left behind by a process that is gone is replaced; one that a live process
    /// answers on is not.
    ///
    /// # Errors
    /// If `interface` is not a valid interface name, another process serves the interface, the
    /// socket cannot be created, or this is called outside a tokio runtime.
    ///
    /// # Panics
    /// If the current tokio runtime has IO disabled.
    pub fn bind(interface: &str) -> anyhow::Result<Self> {
        check_interface_name(interface)?;
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(SOCKET_DIR)
            .with_context(|| format!("failed to create {SOCKET_DIR}"))?;
        let path = Path::new(SOCKET_DIR).join(format!("{interface}.sock"));
        Self::bind_socket(path, &format!("interface {interface}"))
    }

    /// Binds a UAPI socket at an arbitrary path (tests, non-standard layouts), replacing a stale
    /// socket file like [`UapiServer::bind`].
    ///
    /// # Errors
    /// As [`UapiServer::bind`].
    ///
    /// # Panics
    /// As [`UapiServer::bind`].
    pub fn bind_path(path: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let path = path.into();
        let label = format!("uapi socket {}", path.display());
        Self::bind_socket(path, &label)
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next well-formed request. Cancel safe: a call is never lost when the future
    /// is dropped, so this fits in a `tokio::select!` loop.
    pub async fn next(&mut self) -> UapiCall {
        if let Some(call) = self.calls.recv().await {
            return call;
        }
        // The accept task holds a sender until `self` is dropped, so it can only be gone after a
        // panic; no call will ever come again.
        if !self.accept_task_gone {
            self.accept_task_gone = true;
            error!(path = %self.path.display(), "uapi accept task stopped");
        }
        std::future::pending().await
    }

    fn bind_socket(path: PathBuf, label: &str) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .context("the uapi server must be bound inside a tokio runtime")?;
        remove_stale_socket(&path, label)?;
        let listener = std::os::unix::net::UnixListener::bind(&path)
            .with_context(|| format!("failed to bind {}", path.display()))?;
        let prepared = prepare_listener(&path, listener, &runtime);
        let (listener, metadata) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                let _ = fs::remove_file(&path);
                return Err(error);
            }
        };
        let (sender, calls) = mpsc::channel(CALL_QUEUE);
        let accept_task = runtime.spawn(accept_loop(listener, metadata.uid(), sender));
        debug!(path = %path.display(), "uapi socket listening");
        Ok(Self {
            file_id: (metadata.dev(), metadata.ino()),
            path,
            calls,
            accept_task,
            accept_task_gone: false,
        })
    }
}

impl Drop for UapiServer {
    fn drop(&mut self) {
        self.accept_task.abort();
        let still_ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|metadata| (metadata.dev(), metadata.ino()) == self.file_id);
        if still_ours {
            if let Err(error) = fs::remove_file(&self.path) {
                debug!(path = %self.path.display(), %error, "failed to remove uapi socket");
            }
        }
    }
}

impl UapiCall {
    /// Answers a `get=1` with `body` (from [`wg::uapi::format_get`]) and `errno=0`.
    pub fn respond_get(self, mut body: String) {
        if !body.is_empty() && !body.ends_with('\n') {
            body.push('\n');
        }
        body.push_str(&status_line(self.operation, 0));
        self.send(body);
    }

    /// Answers with a status alone: `0` for a successful `set=1`, or a positive errno value such
    /// as `libc::EINVAL` when the request cannot be applied.
    ///
    /// The number goes on the wire the way `wg(8)` reads it back into the same errno: negated
    /// for `set=1` (as wireguard-go writes it), as is for `get=1` (whose parser takes digits
    /// only).
    pub fn respond_errno(self, errno: i32) {
        let status = status_line(self.operation, errno);
        self.send(status);
    }

    fn send(self, response: String) {
        // The connection task only stops waiting when the client is gone; nothing to tell it then.
        let _ = self.reply.send(response);
    }
}

/// The operation of a request, which decides how a failure's errno is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Get,
    Set,
}

/// The socket directory's mode, as wireguard-go creates it.
const DIR_MODE: u32 = 0o755;

/// The socket's mode. Connecting needs write permission, so only the owner (root for the real
/// binaries) can talk to the socket.
const SOCKET_MODE: u32 = 0o755;

/// Linux `IFNAMSIZ` (16) minus the terminating NUL.
const MAX_INTERFACE_NAME: usize = 15;

/// Upper bound on one request. `wg setconf` sends about 300 bytes per peer with a few allowed
/// IPs, so 1 MiB holds a few thousand peers while bounding what a client can make us buffer.
const MAX_REQUEST_BYTES: u64 = 1 << 20;

/// How long a client may take to send one request, idle time before it included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Requests waiting for the owner. `wg(8)` sends one request per connection, so a handful covers
/// several tools at once; further ones wait in their connection tasks.
const CALL_QUEUE: usize = 8;

/// Pause after a failed `accept` (typically `EMFILE`) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Rejects names the kernel would (`dev_valid_name`), which also keeps the name from escaping
/// [`SOCKET_DIR`].
fn check_interface_name(interface: &str) -> anyhow::Result<()> {
    let valid = !interface.is_empty()
        && interface.len() <= MAX_INTERFACE_NAME
        && interface != "."
        && interface != ".."
        && !interface
            .chars()
            .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace());
    if !valid {
        bail!("invalid interface name {interface:?}");
    }
    Ok(())
}

/// Removes a socket file nobody answers on; fails if a live process does.
fn remove_stale_socket(path: &Path, label: &str) -> anyhow::Result<()> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(error).with_context(|| format!("failed to inspect {}", path.display()))
        }
    };
    if !metadata.file_type().is_socket() {
        bail!("{} exists and is not a socket", path.display());
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => bail!("{label} is already in use by another process"),
        Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
            debug!(path = %path.display(), "removing stale uapi socket");
            fs::remove_file(path)
                .with_context(|| format!("failed to remove stale socket {}", path.display()))
        }
        Err(error) => Err(error)
            .with_context(|| format!("failed to check whether {} is in use", path.display())),
    }
}

fn prepare_listener(
    path: &Path,
    listener: std::os::unix::net::UnixListener,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<(UnixListener, fs::Metadata)> {
    fs::set_permissions(path, Permissions::from_mode(SOCKET_MODE))
        .with_context(|| format!("failed to set the mode of {}", path.display()))?;
    let metadata = fs::symlink_metadata(path)
        .with_context(|| format!("failed to inspect {}", path.display()))?;
    listener
        .set_nonblocking(true)
        .context("failed to make the uapi socket non-blocking")?;
    let _entered = runtime.enter();
    let listener =
        UnixListener::from_std(listener).context("failed to register the uapi socket")?;
    Ok((listener, metadata))
}

/// Accepts connections until aborted; dropping the `JoinSet` with the task aborts every
/// connection task too.
async fn accept_loop(listener: UnixListener, owner_uid: u32, calls: mpsc::Sender<UapiCall>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if is_authorized(&stream, owner_uid) {
                        connections.spawn(serve_connection(stream, calls.clone()));
                    }
                }
                Err(error) => {
                    warn!(%error, "failed to accept a uapi connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(joined) = connections.join_next() => {
                if let Err(error) = joined {
                    if error.is_panic() {
                        error!(%error, "uapi connection task panicked");
                    }
                }
            }
        }
    }
}

/// Serves root and the socket's owner only. The socket's mode already says so, but it is set
/// just after `bind`, and a connection queued in between would otherwise be served.
fn is_authorized(stream: &UnixStream, owner_uid: u32) -> bool {
    match stream.peer_cred() {
        Ok(credentials) if credentials.uid() == 0 || credentials.uid() == owner_uid => true,
        Ok(credentials) => {
            debug!(
                uid = credentials.uid(),
                "rejecting uapi connection from another user"
            );
            false
        }
        Err(error) => {
            debug!(%error, "rejecting uapi connection without credentials");
            false
        }
    }
}

/// Serves requests on one connection in sequence until the client closes it, misbehaves, or
/// the owner is gone.
async fn serve_connection(stream: UnixStream, calls: mpsc::Sender<UapiCall>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let read = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut reader))
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "request timed out")));
        let text = match read {
            Ok(Some(text)) => text,
            Ok(None) => return,
            Err(error) => {
                debug!(%error, "dropping uapi connection");
                return;
            }
        };
        let operation = operation_of(&text);
        let (response, keep_open) = match parse_request(&text) {
            Ok(request) => {
                trace!(?operation, "uapi request");
                match ask_owner(&calls, operation, request).await {
                    Some(response) => (response, true),
                    None => return,
                }
            }
            Err(error) => {
                debug!(%error, "bad uapi request");
                // After an unknown operation the stream cannot be trusted to be in step.
                let keep_open = error != UapiError::UnknownOperation;
                (status_line(operation, error.errno()), keep_open)
            }
        };
        if let Err(error) = write.write_all(response.as_bytes()).await {
            debug!(%error, "failed to write uapi response");
            return;
        }
        if !keep_open {
            return;
        }
    }
}

/// Reads one request up to its blank line, which is not included. `Ok(None)` is a clean end of
/// the connection between requests; bytes that are not UTF-8 become U+FFFD and fail to parse.
async fn read_request<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<Option<String>> {
    let mut request = Vec::new();
    loop {
        let line_start = request.len();
        let budget = MAX_REQUEST_BYTES.saturating_sub(request.len() as u64);
        let read = (&mut *reader)
            .take(budget)
            .read_until(b'\n', &mut request)
            .await?;
        if read == 0 && request.is_empty() {
            return Ok(None);
        }
        if read == 0 || !request.ends_with(b"\n") {
            let kind = if request.len() as u64 >= MAX_REQUEST_BYTES {
                io::ErrorKind::InvalidData
            } else {
                io::ErrorKind::UnexpectedEof
            };
            return Err(io::Error::new(kind, "incomplete or oversized request"));
        }
        if request.len() - line_start == 1 {
            request.truncate(line_start);
            return Ok(Some(String::from_utf8_lossy(&request).into_owned()));
        }
    }
}

fn operation_of(text: &str) -> Operation {
    if text.split('\n').next() == Some("get=1") {
        Operation::Get
    } else {
        Operation::Set
    }
}

/// Hands a request to the owner; `None` when the owner is gone.
async fn ask_owner(
    calls: &mpsc::Sender<UapiCall>,
    operation: Operation,
    request: Request,
) -> Option<String> {
    let (reply, response) = oneshot::channel();
    let call = UapiCall {
        request,
        operation,
        reply,
    };
    calls.send(call).await.ok()?;
    Some(response.await.unwrap_or_else(|_| {
        debug!("uapi call dropped without an answer");
        status_line(operation, libc::EIO)
    }))
}

/// The closing `errno=N` line and blank line.
///
/// wireguard-tools reads the number back differently per operation: after a set it takes
/// `errno = -N` (wireguard-go writes `errno=-22` for `EINVAL`), after a get it accepts digits
/// only and takes `errno = N`. Writing it the other way round makes `wg` print
/// "Unknown error -22" or "Protocol error".
fn status_line(operation: Operation, errno: i32) -> String {
    let errno = errno.unsigned_abs();
    match (operation, errno) {
        (Operation::Get | Operation::Set, 0) => "errno=0\n\n".to_owned(),
        (Operation::Get, errno) => format!("errno={errno}\n\n"),
        (Operation::Set, errno) => format!("errno=-{errno}\n\n"),
    }
}

#[cfg(test)]
#[cfg_attr(test, allow(clippy::unwrap_used, clippy::print_stderr))]
mod tests {
    use super::*;
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher as _;
    use std::process::{Command, Output};
    use std::time::SystemTime;
    use wg::keys::{PrivateKey, PublicKey};
    use wg::uapi::{format_get, DeviceSnapshot, PeerSnapshot, PeerUpdate, SetRequest};

    fn random_suffix() -> String {
        let random = RandomState::new().hash_one((std::process::id(), SystemTime::now()));
        format!("{:08x}", random as u32)
    }

    /// A socket path unique to one test, removed again when dropped.
    struct TempSocket(PathBuf);

    impl TempSocket {
        fn new() -> Self {
            let name = format!("gatehouse-uapi-test-{}.sock", random_suffix());
            Self(std::env::temp_dir().join(name))
        }
    }

    impl Drop for TempSocket {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }

    /// Sends `request` and reads everything until the server closes the connection, which it
    /// does once the client has closed its side.
    async fn exchange_and_close(path: &Path, request: &str) -> String {
        let mut stream = UnixStream::connect(path).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    /// Reads one response: everything up to and including its blank line.
    async fn read_response<R: AsyncBufRead + Unpin>(reader: &mut R) -> String {
        let mut response = String::new();
        loop {
            let read = reader.read_line(&mut response).await.unwrap();
            assert_ne!(read, 0, "connection closed mid-response: {response:?}");
            if response.ends_with("\n\n") || response == "\n" {
                return response;
            }
        }
    }

    fn public_key(seed: u8) -> PublicKey {
        PrivateKey::from_bytes([seed; 32]).public_key()
    }

    fn expect_set(call: UapiCall) -> (SetRequest, UapiCall) {
        let mut call = call;
        match std::mem::replace(&mut call.request, Request::Get) {
            Request::Set(set) => (set, call),
            Request::Get => panic!("expected a set request"),
        }
    }

    #[tokio::test]
    async fn get_is_answered_with_the_owners_body_and_errno_zero() {
        let socket = TempSocket::new();
        let mut server = UapiServer::bind_path(&socket.0).unwrap();
        let path = socket.0.clone();
        let client = tokio::spawn(async move { exchange_and_close(&path, "get=1\n\n").await });

        let call = server.next().await;
        assert!(matches!(call.request, Request::Get));
        call.respond_get("listen_port=51820\n".to_owned());

        assert_eq!(client.await.unwrap(), "listen_port=51820\nerrno=0\n\n");
    }

    #[tokio::test]
    async fn requests_on_one_connection_are_served_in_sequence() {
        let socket = TempSocket::new();
        let mut server = UapiServer::bind_path(&socket.0).unwrap();
        let key = public_key(1);
        let set = format!(
            "set=1\nlisten_port=1234\npublic_key={}\nallowed_ip=10.0.0.2/32\n\n",
            key.to_hex()
        );
        let path = socket.0.clone();
        let client = tokio::spawn(async move {
            let mut stream = BufReader::new(UnixStream::connect(&path).await.unwrap());
            stream.get_mut().write_all(set.as_bytes()).await.unwrap();
            let first = read_response(&mut stream).await;
            stream
                .get_mut()
                .write_all(b"set=1\nfwmark=1\n\n")
                .await
                .unwrap();
            let second = read_response(&mut stream).await;
            stream.get_mut().write_all(b"get=1\n\n").await.unwrap();
            let third = read_response(&mut stream).await;
            (first, second, third)
        });

        let (set, call) = expect_set(server.next().await);
        assert_eq!(set.listen_port, Some(1234));
        let expected_peer = PeerUpdate {
            allowed_ips: vec!["10.0.0.2/32".parse().unwrap()],
            ..PeerUpdate::new(key)
        };
        assert_eq!(set.peers, vec![expected_peer]);
        call.respond_errno(0);
        let (set, call) = expect_set(server.next().await);
        assert_eq!(set.fwmark, Some(Some(1)));
        call.respond_errno(libc::EADDRINUSE);
        server.next().await.respond_errno(libc::EINVAL);

        let (first, second, third) = client.await.unwrap();
        assert_eq!(first, "errno=0\n\n");
        assert_eq!(second, format!("errno=-{}\n\n", libc::EADDRINUSE));
        assert_eq!(third, format!("errno={}\n\n", libc::EINVAL));
    }

    #[tokio::test]
    async fn malformed_requests_are_answered_without_the_owner() {
        let socket = TempSocket::new();
        let mut server = UapiServer::bind_path(&socket.0).unwrap();

        let bad_key = exchange_and_close(&socket.0, "set=1\nlisten-port=1\n\n").await;
        let bad_line = exchange_and_close(&socket.0, "set=1\nlisten_port\n\n").await;
        let bad_get = exchange_and_close(&socket.0, "get=1\nfwmark=1\n\n").await;
        let bad_operation = exchange_and_close(&socket.0, "hello\n\nget=1\n\n").await;
        let not_utf8 = exchange_and_close(&socket.0, "set=1\nlisten_port=\u{ff}\n\n").await;

        assert_eq!(bad_key, "errno=-22\n\n");
        assert_eq!(bad_line, format!("errno=-{}\n\n", libc::EPROTO));
        assert_eq!(bad_get, "errno=22\n\n");
        // The connection is closed after an unknown operation: the get behind it is not served.
        assert_eq!(bad_operation, "errno=-22\n\n");
        assert_eq!(not_utf8, "errno=-22\n\n");
        assert!(server.calls.try_recv().is_err());
    }

    #[tokio::test]
    async fn broken_connections_are_dropped_and_the_server_keeps_serving() {
        let socket = TempSocket::new();
        let mut server = UapiServer::bind_path(&socket.0).unwrap();

        // What `wg` does to probe for a userspace interface: connect, then close.
        drop(UnixStream::connect(&socket.0).await.unwrap());
        // A request cut off before its blank line ends the connection at once, not at the
        // request timeout (the guard is far below it).
        let truncated = exchange_and_close(&socket.0, "set=1\nlisten_port=1\n");
        let truncated = tokio::time::timeout(Duration::from_secs(10), truncated).await;
        assert_eq!(truncated.unwrap(), "");
        // A request over the size limit.
        let mut huge = String::from("set=1\n");
        huge.push_str(&"x".repeat(MAX_REQUEST_BYTES as usize));
        let mut stream = UnixStream::connect(&socket.0).await.unwrap();
        let (mut read, mut write) = stream.split();
        let (written, response) = tokio::join!(write.write_all(huge.as_bytes()), async {
            let mut response = Vec::new();
            read.read_to_end(&mut response).await.map(|_| response)
        });
        assert!(written.is_err() || response.is_err() || response.unwrap().is_empty());

        let path = socket.0.clone();
        let client = tokio::spawn(async move { exchange_and_close(&path, "get=1\n\n").await });
        server.next().await.respond_get(String::new());
        assert_eq!(client.await.unwrap(), "errno=0\n\n");
    }

    #[tokio::test]
    async fn dropped_calls_are_answered_with_eio() {
        let socket = TempSocket::new();
        let mut server = UapiServer::bind_path(&socket.0).unwrap();
        let path = socket.0.clone();
        let client = tokio::spawn(async move { exchange_and_close(&path, "set=1\n\n").await });

        drop(server.next().await);

        assert_eq!(client.await.unwrap(), format!("errno=-{}\n\n", libc::EIO));
    }

    #[tokio::test]
    async fn stale_sockets_are_replaced_and_live_ones_are_not() {
        let socket = TempSocket::new();
        let live = std::os::unix::net::UnixListener::bind(&socket.0).unwrap();

        let error = UapiServer::bind_path(&socket.0).unwrap_err();
        assert!(
            format!("{error:#}").contains("is already in use by another process"),
            "{error:#}"
        );

        drop(live); // The file stays behind, with nobody listening.
        let server = UapiServer::bind_path(&socket.0).unwrap();
        assert!(fs::symlink_metadata(&socket.0)
            .unwrap()
            .file_type()
            .is_socket());

        drop(server);
        assert!(!socket.0.exists());
    }

    #[tokio::test]
    async fn non_socket_files_are_left_alone() {
        let socket = TempSocket::new();
        fs::write(&socket.0, "not a socket").unwrap();

        let error = UapiServer::bind_path(&socket.0).unwrap_err();

        assert!(
            format!("{error:#}").contains("is not a socket"),
            "{error:#}"
        );
        assert_eq!(fs::read_to_string(&socket.0).unwrap(), "not a socket");
    }

    #[test]
    fn interface_names_are_checked_like_the_kernel_does() {
        for name in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "wg 0",
            "wg:0",
            "sixteen-chars-xx",
        ] {
            assert!(check_interface_name(name).is_err(), "{name:?}");
        }
        for name in ["wg0", "gatehouse", "fifteen-chars-x"] {
            assert!(check_interface_name(name).is_ok(), "{name:?}");
        }
    }

    /// Runs stock wireguard-tools against the server: `wg show` must print the snapshot, `wg set`
    /// must arrive as a set request, and errors must read back as the errno the owner gave.
    #[tokio::test]
    async fn stock_wg_talks_to_the_server() {
        if let Some(reason) = skip_reason_for_wg() {
            eprintln!("skipping stock_wg_talks_to_the_server: {reason}");
            return;
        }
        let interface = format!("gh{}", random_suffix());
        let mut server = UapiServer::bind(&interface).unwrap();
        let key = public_key(7);
        let snapshot = DeviceSnapshot {
            private_key: Some(PrivateKey::from_bytes([9; 32])),
            listen_port: 51820,
            fwmark: None,
            peers: vec![PeerSnapshot {
                public_key: key,
                preshared_key: None,
                endpoint: Some("192.0.2.1:51820".parse().unwrap()),
                persistent_keepalive: Some(25),
                allowed_ips: vec!["10.0.0.2/32".parse().unwrap()],
                since_last_handshake: Some(Duration::from_secs(5)),
                rx_bytes: 1024,
                tx_bytes: 2048,
            }],
        };

        let show = run_wg(&mut server, &["show", &interface], |call| {
            assert!(matches!(call.request, Request::Get));
            call.respond_get(format_get(&snapshot, SystemTime::now()));
        })
        .await;
        let stdout = String::from_utf8_lossy(&show.stdout);
        assert!(show.status.success(), "{show:?}");
        assert!(stdout.contains(&key.to_base64()), "{stdout}");
        assert!(stdout.contains("latest handshake"), "{stdout}");
        assert!(stdout.contains("transfer"), "{stdout}");
        assert!(stdout.contains("allowed ips: 10.0.0.2/32"), "{stdout}");
        assert!(stdout.contains("endpoint: 192.0.2.1:51820"), "{stdout}");

        let mut sets = Vec::new();
        let base64 = key.to_base64();
        let args = [
            "set",
            &interface,
            "peer",
            &base64,
            "allowed-ips",
            "10.0.0.2/32",
        ];
        let set = run_wg(&mut server, &args, |call| {
            let (set, call) = expect_set(call);
            sets.push(set);
            call.respond_errno(0);
        })
        .await;
        assert!(set.status.success(), "{set:?}");
        assert_eq!(sets.len(), 1);
        let expected_peer = PeerUpdate {
            replace_allowed_ips: true,
            allowed_ips: vec!["10.0.0.2/32".parse().unwrap()],
            ..PeerUpdate::new(key)
        };
        assert_eq!(sets[0].peers, vec![expected_peer]);

        for args in [
            vec!["show", &interface],
            vec!["set", &interface, "listen-port", "1"],
        ] {
            let failed = run_wg(&mut server, &args, |call| {
                call.respond_errno(libc::EINVAL);
            })
            .await;
            let stderr = String::from_utf8_lossy(&failed.stderr);
            assert!(!failed.status.success(), "{args:?}");
            assert!(stderr.contains("Invalid argument"), "{args:?}: {stderr}");
        }
    }

    fn skip_reason_for_wg() -> Option<&'static str> {
        let on_path = std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("wg").is_file()));
        if !on_path {
            return Some("no wg binary on PATH (apt package wireguard-tools)");
        }
        // /proc/self belongs to the effective user; the socket directory needs root.
        let is_root = fs::metadata("/proc/self").is_ok_and(|metadata| metadata.uid() == 0);
        if !is_root {
            return Some("binding /var/run/wireguard needs root");
        }
        None
    }

    /// Runs `wg args…` on the blocking pool, answering its calls with `on_call` meanwhile.
    async fn run_wg(
        server: &mut UapiServer,
        args: &[&str],
        mut on_call: impl FnMut(UapiCall),
    ) -> Output {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        let wg = tokio::task::spawn_blocking(move || Command::new("wg").args(&args).output());
        tokio::pin!(wg);
        loop {
            tokio::select! {
                output = &mut wg => return output.unwrap().unwrap(),
                call = server.next() => on_call(call),
            }
        }
    }
}
