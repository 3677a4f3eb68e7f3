//! Authorization code + PKCE (S256) with a loopback redirect (RFC 8252 §7.3) for `--browser`.
//!
//! The redirect URI is `http://127.0.0.1:<port>/callback` on a port the OS picks. Exactly one
//! HTTP request is read from it, bounded in size and time; its `state` must equal ours
//! (compared in constant time) before the code is exchanged together with the PKCE verifier.

use super::{client_id, printable, tell, token_error, Endpoints};
use anyhow::{anyhow, bail, Context as _};
use oauth2::basic::BasicClient;
use oauth2::url::form_urlencoded;
use oauth2::{
    AccessToken, AuthorizationCode, CsrfToken, PkceCodeChallenge, RedirectUrl, TokenResponse as _,
};
use std::net::Ipv4Addr;
use std::time::Duration;
use subtle::ConstantTimeEq as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// How long the browser has to come back: a password login with a second factor fits.
const CALLBACK_WAIT: Duration = Duration::from_secs(5 * 60);
/// Largest request head accepted on the loopback port; browsers send well under 2 KiB.
const MAX_REQUEST: usize = 8 * 1024;
/// The program that opens URLs in the desktop's browser.
const OPENER: &str = if cfg!(target_os = "macos") {
    "open"
} else {
    "xdg-open"
};

/// What the browser brought back on the redirect URI.
#[derive(Debug, PartialEq, Eq)]
enum Callback {
    /// `?code=…&state=…`.
    Code { code: String, state: String },
    /// `?error=…` (RFC 6749 §4.1.2.1), e.g. `access_denied`.
    Error { error: String },
}

/// Signs in through the desktop's browser and returns the user-session access token.
pub(super) async fn sign_in(
    http: &oauth2::reqwest::Client,
    endpoints: &Endpoints,
    open: &dyn Fn(&str, Option<&str>),
) -> anyhow::Result<AccessToken> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .context("failed to listen on a loopback port")?;
    let port = listener
        .local_addr()
        .context("failed to read the loopback port")?
        .port();
    let redirect = RedirectUrl::new(format!("http://127.0.0.1:{port}/callback"))
        .context("failed to build the redirect URI")?;
    let client = BasicClient::new(client_id())
        .set_auth_uri(endpoints.authorize.clone())
        .set_token_uri(endpoints.token.clone())
        .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge)
        .url();

    tell(&format!(
        "To log in, open this URL in a browser on this machine:\n  {url}"
    ));
    open(url.as_str(), Some(OPENER));
    tell("Waiting for the browser...");
    let code = tokio::time::timeout(CALLBACK_WAIT, receive_code(&listener, &state))
        .await
        .map_err(|_| anyhow!("the browser did not come back within 5 minutes"))??;
    drop(listener);

    let token = client
        .exchange_code(code)
        .set_pkce_verifier(verifier)
        .request_async(http)
        .await
        .map_err(|e| token_error("authorization code exchange", e))?;
    tracing::debug!("authorization code exchanged");
    Ok(token.access_token().clone())
}

/// Accepts one connection, reads one request, answers it, and returns the code if the request
/// is our callback with our state.
async fn receive_code(
    listener: &TcpListener,
    expected: &CsrfToken,
) -> anyhow::Result<AuthorizationCode> {
    let (mut stream, _) = listener
        .accept()
        .await
        .context("failed to accept the browser's connection")?;
    let head = match read_head(&mut stream).await {
        Ok(head) => head,
        Err(e) => {
            answer(
                &mut stream,
                "431 Request Header Fields Too Large",
                "Login failed.",
            )
            .await;
            return Err(e);
        }
    };
    let result = match parse_callback(&head) {
        Ok(Callback::Code { code, state }) => {
            if bool::from(state.as_bytes().ct_eq(expected.secret().as_bytes())) {
                Ok(AuthorizationCode::new(code))
            } else {
                Err(anyhow!(
                    "the browser's answer carries another login's state; run `gatehouse login` again"
                ))
            }
        }
        Ok(Callback::Error { error }) => Err(anyhow!("identity refused the login: {error}")),
        Err(reason) => Err(anyhow!(
            "the browser's request is not a login callback: {reason}"
        )),
    };
    match &result {
        Ok(_) => {
            let page = "Login complete. You can close this tab and return to the terminal.";
            answer(&mut stream, "200 OK", page).await;
        }
        Err(_) => {
            let page = "Login failed. See the terminal for details.";
            answer(&mut stream, "400 Bad Request", page).await;
        }
    }
    result
}

/// Reads up to the blank line that ends a request head, at most [`MAX_REQUEST`] bytes.
async fn read_head(stream: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut len = 0;
    loop {
        if len == buf.len() {
            bail!("the browser's request is larger than {MAX_REQUEST} bytes");
        }
        let n = stream
            .read(&mut buf[len..])
            .await
            .context("failed to read the browser's request")?;
        if n == 0 {
            bail!("the browser closed the connection before sending a request");
        }
        len += n;
        let head = &buf[..len];
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            buf.truncate(len);
            return Ok(buf);
        }
    }
}

/// Answers with a short static page; a browser that went away is not an error.
async fn answer(stream: &mut TcpStream, status: &str, text: &str) {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Gatehouse</title></head>\
         <body><p>{text}</p></body></html>"
    );
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if let Err(e) = stream.write_all(response.as_bytes()).await {
        tracing::debug!("failed to answer the browser: {e}");
    }
    let _ = stream.shutdown().await;
}

/// Reads the request line of `head`: `GET /callback?<query> HTTP/1.x`. The query must carry
/// `code` and `state`, or `error`, each at most once (RFC 6749 §4.1.2).
fn parse_callback(head: &[u8]) -> Result<Callback, &'static str> {
    let line_end = head
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no request line")?;
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| "request line is not UTF-8")?;
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if method != "GET" {
        return Err("not a GET request");
    }
    if !version.starts_with("HTTP/1.") {
        return Err("not HTTP/1.x");
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/callback" {
        return Err("wrong path");
    }
    let (mut code, mut state, mut error) = (None, None, None);
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match name.as_ref() {
            "code" => &mut code,
            "state" => &mut state,
            "error" => &mut error,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err("a parameter appears twice");
        }
    }
    if let Some(error) = error {
        return Ok(Callback::Error {
            error: printable(&error),
        });
    }
    match (code, state) {
        (Some(code), Some(state)) if !code.is_empty() && !state.is_empty() => {
            Ok(Callback::Code { code, state })
        }
        _ => Err("missing code or state"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn callback_with_code_and_state_parses() {
        let head =
            b"GET /callback?code=abc%2F1&state=xyz&iss=x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

        assert_eq!(
            parse_callback(head),
            Ok(Callback::Code {
                code: "abc/1".into(),
                state: "xyz".into()
            })
        );
    }

    #[test]
    fn callback_with_an_error_reports_it_printably() {
        let head = b"GET /callback?error=access_denied%0A%1B[31m&state=s HTTP/1.1\r\n\r\n";

        assert_eq!(
            parse_callback(head),
            Ok(Callback::Error {
                error: "access_denied[31m".into()
            })
        );
    }

    #[test]
    fn malformed_requests_are_rejected() {
        let cases: [&[u8]; 12] = [
            b"",
            b"GET /callback?code=a&state=b HTTP/1.1",
            b"POST /callback?code=a&state=b HTTP/1.1\r\n\r\n",
            b"GET /other?code=a&state=b HTTP/1.1\r\n\r\n",
            b"GET /callback?code=a&state=b HTTP/2\r\n\r\n",
            b"GET /callback?code=a&state=b\r\n\r\n",
            b"GET  /callback?code=a&state=b HTTP/1.1\r\n\r\n",
            b"GET /callback?code=a HTTP/1.1\r\n\r\n",
            b"GET /callback?code=&state=b HTTP/1.1\r\n\r\n",
            b"GET /callback?code=a&code=c&state=b HTTP/1.1\r\n\r\n",
            b"GET /callback?code=\xff&state=b HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
        ];
        for head in cases {
            assert!(
                parse_callback(head).is_err(),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..600 {
            let mut head = b"GET /callback?".to_vec();
            for _ in 0..len % 97 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                head.push(b"%&=?\r\n \xffcodestate"[(seed % 17) as usize]);
            }
            let _ = parse_callback(&head);
        }
    }

    async fn send(port: u16, request: &[u8]) -> String {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    async fn listener() -> (TcpListener, u16) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    #[tokio::test]
    async fn matching_state_yields_the_code_and_a_success_page() {
        let (listener, port) = listener().await;
        let state = CsrfToken::new("s1".into());

        let request = b"GET /callback?code=c1&state=s1 HTTP/1.1\r\nHost: x\r\n\r\n";
        let (code, page) = tokio::join!(receive_code(&listener, &state), send(port, request));

        assert_eq!(code.unwrap().secret(), "c1");
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(page.contains("Login complete"));
    }

    #[tokio::test]
    async fn other_state_is_refused() {
        let (listener, port) = listener().await;
        let state = CsrfToken::new("s1".into());

        let request = b"GET /callback?code=c1&state=s2 HTTP/1.1\r\n\r\n";
        let (code, page) = tokio::join!(receive_code(&listener, &state), send(port, request));

        assert!(code.unwrap_err().to_string().contains("state"));
        assert!(page.starts_with("HTTP/1.1 400 "), "{page}");
    }

    #[tokio::test]
    async fn oversized_request_is_refused() {
        let (listener, port) = listener().await;
        let state = CsrfToken::new("s1".into());

        let mut request = b"GET /callback?code=".to_vec();
        // Exactly the limit, so no unread bytes turn the close into a reset.
        request.resize(MAX_REQUEST, b'a');
        let (code, page) = tokio::join!(receive_code(&listener, &state), send(port, &request));

        assert!(code.unwrap_err().to_string().contains("larger"));
        assert!(page.starts_with("HTTP/1.1 431 "), "{page}");
    }
}
