//! The device authorization grant (RFC 8628): show a code, poll the token endpoint.
//!
//! oauth2's poller honours the server's `interval`, adds 5 s on `slow_down` (RFC 8628 §3.5),
//! keeps polling on `authorization_pending`, and stops at `expires_in`. The device code is a
//! secret (whoever holds it receives the token); only the user code and URIs are shown.

use super::{client_id, printable, tell, token_error, Endpoints};
use oauth2::basic::BasicClient;
use oauth2::{
    AccessToken, DeviceCodeErrorResponse, DeviceCodeErrorResponseType, HttpClientError,
    RequestTokenError, StandardDeviceAuthorizationResponse, TokenResponse as _,
};

/// Runs the device grant to its end and returns the user-session access token.
pub(super) async fn sign_in(
    http: &oauth2::reqwest::Client,
    endpoints: &Endpoints,
    open: &dyn Fn(&str, Option<&str>),
) -> anyhow::Result<AccessToken> {
    let client = BasicClient::new(client_id())
        .set_token_uri(endpoints.token.clone())
        .set_device_authorization_url(endpoints.device_authorization.clone());
    let details: StandardDeviceAuthorizationResponse = client
        .exchange_device_code()
        .request_async(http)
        .await
        .map_err(|e| token_error("device authorization request", e))?;

    let user_code = printable(details.user_code().secret());
    let uri = details.verification_uri().as_str();
    tell(&format!(
        "To log in, open {uri} in a browser on any device and enter the code {user_code}"
    ));
    let complete = details.verification_uri_complete().map(|u| u.secret());
    if let Some(complete) = complete {
        tell(&format!("or open {complete}"));
    }
    tell("Waiting for approval...");
    // Only on request: the device grant is for machines without a browser of their own.
    open(complete.map_or(uri, String::as_str), None);

    let token = client
        .exchange_device_access_token(&details)
        .request_async(http, tokio::time::sleep, None)
        .await
        .map_err(poll_error)?;
    tracing::debug!("device authorization approved");
    Ok(token.access_token().clone())
}

fn poll_error(
    err: RequestTokenError<HttpClientError<oauth2::reqwest::Error>, DeviceCodeErrorResponse>,
) -> anyhow::Error {
    let answer = match err {
        RequestTokenError::ServerResponse(answer) => answer,
        RequestTokenError::Request(e) => {
            return anyhow::Error::new(e).context("failed to poll the token endpoint")
        }
        RequestTokenError::Parse(e, _body) => {
            return anyhow::anyhow!(
                "identity's token answer is not valid OAuth JSON (at `{}`)",
                e.path()
            )
        }
        RequestTokenError::Other(text) => return anyhow::anyhow!("polling failed: {text}"),
    };
    let message = match answer.error() {
        DeviceCodeErrorResponseType::AccessDenied => "the login was denied",
        DeviceCodeErrorResponseType::ExpiredToken => {
            "the code expired before the login was approved: run `gatehouse login` again"
        }
        DeviceCodeErrorResponseType::AuthorizationPending
        | DeviceCodeErrorResponseType::SlowDown
        | DeviceCodeErrorResponseType::Basic(_) => {
            return anyhow::anyhow!("identity refused the token request: {answer}")
        }
    };
    anyhow::anyhow!("{message}").context(match answer.error_description() {
        Some(description) => format!("login failed ({description})"),
        None => "login failed".to_owned(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn answer(kind: DeviceCodeErrorResponseType) -> String {
        let err = RequestTokenError::ServerResponse(DeviceCodeErrorResponse::new(kind, None, None));
        format!("{:#}", poll_error(err))
    }

    #[test]
    fn denied_and_expired_logins_say_so() {
        assert_eq!(
            answer(DeviceCodeErrorResponseType::AccessDenied),
            "login failed: the login was denied"
        );
        assert!(answer(DeviceCodeErrorResponseType::ExpiredToken).contains("expired"));
    }

    #[test]
    fn other_oauth_errors_show_the_code() {
        let text = answer(DeviceCodeErrorResponseType::Basic(
            oauth2::basic::BasicErrorResponseType::InvalidGrant,
        ));

        assert!(text.contains("invalid_grant"), "{text}");
    }
}
