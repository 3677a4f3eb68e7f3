//! Clientless access: HTTPS for application hostnames, for browsers and machines that have no
//! Gatehouse client.
//!
//! The edge terminates TLS with the `[clientless]` certificates ([`super::certs`]) and hyper
//! parses each request. Per request, in order:
//! - [`CALLBACK_PATH`]: the end of the login round trip ([`edge_core::clientless`]): the
//!   token must be valid for this host and carry this browser's login nonce; then the session
//!   cookie is set and the browser goes on to its (local) path.
//! - [`LOGOUT_PATH`]: the cookie is cleared and the browser sent to identity's logout, which
//!   revokes the session for every application.
//! - A service token in [`SERVICE_TOKEN_HEADER`]: checked against the feed's machine tokens;
//!   an invalid one gets 401 (machines are never redirected).
//! - A valid session cookie: the user's facts decide.
//! - Otherwise: a redirect to identity's login, with a fresh nonce kept in a cookie.
//!
//! A decided request is audited and, when allowed, sent to a connector like a tunnel client's
//! ([`super::http::forward`]) with an application assertion for the session's user. The
//! edge's own cookies and the service token never reach the origin.

use super::http::{forward, page, Body, Forward};
use super::pages::{Page, Reference};
use super::{accept_failed, FrontContext};
use crate::assertions::Subject;
use base64::Engine as _;
use bytes::Bytes;
use cookie::{Cookie, SameSite};
use edge_core::clientless::{
    check_callback, local_path, login_url, logout_url, parse_callback, Caller, CALLBACK_PATH,
    LOGIN_STATE_SECS, LOGOUT_PATH, SERVICE_TOKEN_HEADER, SESSION_COOKIE, STATE_COOKIE,
};
use edge_core::http_host::request_host;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The TLS handshake must be done within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole request head within this time (slowloris bound), as on the plain HTTP front.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// hyper's read buffer per connection (bounds a request head).
const MAX_BUF: usize = 32 * 1024;

/// `[clientless]`, ready to serve.
pub(crate) struct Clientless {
    /// Identity's base URL as browsers reach it.
    pub(crate) login_url: String,
    /// The `iss` access sessions must carry (identity's `public_url`).
    pub(crate) issuer: String,
    pub(crate) tls: Arc<rustls::ServerConfig>,
}

pub(crate) async fn serve(tcp: TcpListener, context: Arc<FrontContext>, site: Arc<Clientless>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(site.tls.clone());
    loop {
        match tcp.accept().await {
            Ok((stream, client)) => {
                let (context, site, acceptor) = (context.clone(), site.clone(), acceptor.clone());
                tokio::spawn(async move {
                    connection(stream, client, acceptor, context, site).await;
                });
            }
            Err(e) => accept_failed(&e).await,
        }
    }
}

async fn connection(
    stream: TcpStream,
    client: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    context: Arc<FrontContext>,
    site: Arc<Clientless>,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY: {e}");
    }
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%client, "clientless TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%client, "clientless TLS handshake timed out");
            return;
        }
    };
    let service = hyper::service::service_fn(move |request| {
        let (context, site) = (context.clone(), site.clone());
        async move { Ok::<_, Infallible>(handle(&context, &site, client, local, request).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUF)
        .serve_connection(TokioIo::new(tls), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(%client, "clientless connection ended: {e}");
    }
}

async fn handle(
    context: &FrontContext,
    site: &Clientless,
    client: SocketAddr,
    local: SocketAddr,
    mut request: Request<Incoming>,
) -> Response<Body> {
    let reference = Reference::random();
    let authority = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
    let Some(host) = request_host(authority.as_deref(), None) else {
        return page(Page::BadRequest, reference);
    };
    // The host as the browser sent it (port included), for the URLs it is sent back to.
    let authority = authority.unwrap_or_else(|| host.clone());
    let path = request.uri().path().to_owned();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let access = context.access.current();
    let now = claims_now();

    if path == CALLBACK_PATH {
        let state = cookie_value(request.headers(), STATE_COOKIE);
        let checked =
            parse_callback(request.uri().query().unwrap_or("")).and_then(|(token, to)| {
                check_callback(&access, &site.issuer, &token, &host, state.as_deref(), now)
                    .map(|session| (token, to, session))
            });
        return match checked {
            Ok((token, to, session)) => {
                let max_age = session.common.exp.0.saturating_sub(now.0);
                tracing::debug!(%host, "clientless session started");
                let mut response = redirect(&to);
                set_cookie(&mut response, session_cookie(token, max_age));
                set_cookie(&mut response, removal(STATE_COOKIE));
                response
            }
            Err(e) => {
                tracing::info!(%reference, %host, "clientless sign-in refused: {e}");
                page(Page::LoginFailed, reference)
            }
        };
    }
    if path == LOGOUT_PATH {
        let mut response = redirect(&logout_url(&site.login_url));
        set_cookie(&mut response, removal(SESSION_COOKIE));
        return response;
    }

    let caller = if let Some(presented) = request.headers().get(SERVICE_TOKEN_HEADER) {
        let verified = presented
            .to_str()
            .map_err(|_| edge_core::clientless::ServiceTokenRejected::Malformed)
            .and_then(|t| access.verify_service_token(t.trim(), now));
        match verified {
            Ok(token_id) => Caller::Service { token_id },
            Err(e) => {
                tracing::info!(%reference, %host, "service token refused: {e}");
                return page(Page::BadServiceToken, reference);
            }
        }
    } else {
        let session = cookie_value(request.headers(), SESSION_COOKIE)
            .map(|token| access.verify_session(&site.issuer, &token, &host, now));
        match session {
            Some(Ok(session)) => Caller::User(Box::new(session)),
            rejected => {
                if let Some(Err(e)) = rejected {
                    tracing::debug!(%host, "session cookie not accepted: {e}");
                }
                return login_redirect(site, &authority, &path_and_query);
            }
        }
    };

    let verdict = context.decide_caller(&caller, client.ip(), &host, &path, reference);
    if !verdict.allowed {
        return page(
            Page::Denied {
                summary: verdict.summary,
            },
            reference,
        );
    }
    let assertion = match (&context.assertions, &caller, &verdict.application) {
        (Some(cache), Caller::User(session), Some(application)) => {
            cache
                .assertion(Subject::Session(session.sid.clone()), application)
                .await
        }
        _ => None,
    };
    strip_credentials(request.headers_mut());
    let to = Forward {
        client,
        port: local.port(),
        host,
        path,
        reference,
        assertion,
        live: None,
    };
    forward(context, to, request).await
}

/// Sends the browser to identity's login with a fresh nonce, kept in the state cookie.
fn login_redirect(site: &Clientless, authority: &str, path_and_query: &str) -> Response<Body> {
    let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>());
    let target = login_url(
        &site.login_url,
        authority,
        &local_path(path_and_query),
        &nonce,
    );
    let mut response = redirect(&target);
    let state = Cookie::build((STATE_COOKIE, nonce))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(LOGIN_STATE_SECS).unwrap_or(600),
        ))
        .build();
    set_cookie(&mut response, state);
    response
}

/// The session cookie: host-only (`__Host-`), HttpOnly, Secure, SameSite=Lax (the login's
/// return is a cross-site top-level navigation), as long as the session.
fn session_cookie(token: String, max_age_secs: u64) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, token))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age_secs).unwrap_or(i64::MAX),
        ))
        .build()
}

/// A cookie that makes the browser drop `name`.
fn removal(name: &'static str) -> Cookie<'static> {
    let mut cookie = Cookie::build((name, ""))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .build();
    cookie.make_removal();
    cookie
}

fn set_cookie(response: &mut Response<Body>, cookie: Cookie<'_>) {
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// A 302 to `location` that nothing caches and that leaks no URL onwards.
fn redirect(location: &str) -> Response<Body> {
    let body = Full::new(Bytes::new())
        .map_err(|never: Infallible| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::FOUND;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

/// The value of cookie `name` from the request's `Cookie` headers.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// Removes the service token and the edge's own cookies, keeping the origin's cookies as sent.
fn strip_credentials(headers: &mut HeaderMap) {
    headers.remove(SERVICE_TOKEN_HEADER);
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("").trim();
            !pair.is_empty() && name != SESSION_COOKIE && name != STATE_COOKIE
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        if let Ok(value) = HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(header::COOKIE, value);
        }
    }
}

fn claims_now() -> identity_claims::UnixTime {
    identity_claims::UnixTime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edges_cookies_and_the_service_token_never_reach_the_origin() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("app=1; __Host-gatehouse-session=secret"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("__Host-gatehouse-login=n; theme=dark"),
        );
        headers.insert(SERVICE_TOKEN_HEADER, HeaderValue::from_static("ghst_x"));
        assert_eq!(
            cookie_value(&headers, SESSION_COOKIE).as_deref(),
            Some("secret")
        );
        strip_credentials(&mut headers);
        assert_eq!(
            headers.get(header::COOKIE).map(HeaderValue::as_bytes),
            Some(&b"app=1; theme=dark"[..])
        );
        assert!(headers.get(SERVICE_TOKEN_HEADER).is_none());

        let mut only_ours = HeaderMap::new();
        only_ours.insert(
            header::COOKIE,
            HeaderValue::from_static("__Host-gatehouse-session=secret"),
        );
        strip_credentials(&mut only_ours);
        assert!(only_ours.get(header::COOKIE).is_none());
    }

    #[test]
    fn cookies_are_host_only_secure_http_only_and_lax() {
        let cookie = session_cookie("t".to_owned(), 60).to_string();
        for part in [
            "__Host-gatehouse-session=t",
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=60",
        ] {
            assert!(cookie.contains(part), "{cookie} lacks {part}");
        }
        assert!(!cookie.contains("Domain"), "{cookie}");
        let gone = removal(SESSION_COOKIE).to_string();
        assert!(gone.contains("Max-Age=0"), "{gone}");
    }

    #[test]
    fn the_login_redirect_keeps_the_nonce_in_a_cookie_and_only_a_local_path() {
        let site = Clientless {
            login_url: "https://id.corp.test".to_owned(),
            issuer: "https://id.corp.test".to_owned(),
            tls: Arc::new(
                rustls::ServerConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(rustls::server::ResolvesServerCertUsingSni::new())),
            ),
        };
        let response = login_redirect(&site, "wiki.corp.test:8443", "/docs?x=1");
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = response.headers()[header::LOCATION]
            .to_str()
            .expect("ascii");
        assert!(
            location.starts_with("https://id.corp.test/v1/access/authorize?host=wiki.corp.test%3A8443&path=%2Fdocs%3Fx%3D1&nonce="),
            "{location}"
        );
        let nonce = location.rsplit("nonce=").next().expect("nonce");
        let set = response.headers()[header::SET_COOKIE]
            .to_str()
            .expect("ascii");
        assert!(set.starts_with(&format!("{STATE_COOKIE}={nonce}")), "{set}");
        let odd = login_redirect(&site, "wiki.corp.test", "//evil.test/x");
        let location = odd.headers()[header::LOCATION].to_str().expect("ascii");
        assert!(location.contains("path=%2F&"), "{location}");
    }
}
