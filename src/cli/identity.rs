//! Who is running the command: the name recorded in `acknowledgedBy`,
//! `approvedBy` and `resolution.by`.
//!
//! Order: `--as NAME`; else the username the API server authenticates the
//! caller as (`SelfSubjectReview`, `authentication.k8s.io/v1`, Kubernetes
//! 1.28 and later); else, when that API is missing (404) or forbidden (403)
//! or answers `system:anonymous`, the user name of the kubeconfig context.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, PostParams};
use kube::Client;

use super::error::CliError;
use super::session::{map_kube_error, Session};

/// Where the recorded name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    /// `--as`.
    Flag,
    /// The API server's SelfSubjectReview.
    Server,
    /// The kubeconfig context's user.
    Kubeconfig,
}

/// The caller's recorded name and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The name to record.
    pub name: String,
    /// Where it came from.
    pub source: IdentitySource,
}

/// What asking the server (`SelfSubjectReview`) gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerIdentity {
    /// Not asked (e.g. `--as` was given).
    NotAsked,
    /// The authenticated username (may be empty).
    Username(String),
    /// The API does not exist (404) or is forbidden (403).
    Unavailable,
}

/// The username the API server reports for anonymous requests.
pub const ANONYMOUS: &str = "system:anonymous";

/// Choose the identity (pure): `--as`, else a real server-authenticated
/// username, else the kubeconfig user, else [`CliError::NoIdentity`].
pub fn choose_identity(
    as_flag: Option<&str>,
    server: &ServerIdentity,
    kubeconfig_user: Option<&str>,
) -> Result<Identity, CliError> {
    let non_empty = |s: &str| {
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_string())
    };
    if let Some(name) = as_flag.and_then(non_empty) {
        return Ok(Identity {
            name,
            source: IdentitySource::Flag,
        });
    }
    if let ServerIdentity::Username(u) = server {
        if let Some(name) = non_empty(u).filter(|n| n != ANONYMOUS) {
            return Ok(Identity {
                name,
                source: IdentitySource::Server,
            });
        }
    }
    if let Some(name) = kubeconfig_user.and_then(non_empty) {
        return Ok(Identity {
            name,
            source: IdentitySource::Kubeconfig,
        });
    }
    Err(CliError::NoIdentity)
}

/// Ask the API server who we are (`POST .../selfsubjectreviews`). 404 and
/// 403 become [`ServerIdentity::Unavailable`]; other failures are errors.
pub async fn server_identity(
    client: &Client,
    server_url: &str,
) -> Result<ServerIdentity, CliError> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = SelfSubjectReview::default();
    match api.create(&PostParams::default(), &review).await {
        Ok(answer) => Ok(ServerIdentity::Username(
            answer
                .status
                .and_then(|s| s.user_info)
                .and_then(|u| u.username)
                .unwrap_or_default(),
        )),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 403 => {
            tracing::debug!(code = status.code, "SelfSubjectReview unavailable");
            Ok(ServerIdentity::Unavailable)
        }
        Err(e) => Err(map_kube_error(e, server_url)),
    }
}

/// Resolve the caller's identity for a write command.
pub async fn resolve_identity(session: &Session) -> Result<Identity, CliError> {
    let server = if session
        .as_user
        .as_deref()
        .is_some_and(|s| !s.trim().is_empty())
    {
        ServerIdentity::NotAsked
    } else {
        server_identity(&session.client, &session.server_url).await?
    };
    choose_identity(
        session.as_user.as_deref(),
        &server,
        session.kubeconfig_user.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins() {
        let id = choose_identity(
            Some("alice"),
            &ServerIdentity::Username("bob".into()),
            Some("carol"),
        )
        .unwrap();
        assert_eq!(id.name, "alice");
        assert_eq!(id.source, IdentitySource::Flag);
    }

    #[test]
    fn server_beats_kubeconfig() {
        let id =
            choose_identity(None, &ServerIdentity::Username("bob".into()), Some("carol")).unwrap();
        assert_eq!(
            (id.name.as_str(), id.source),
            ("bob", IdentitySource::Server)
        );
    }

    #[test]
    fn falls_back_to_kubeconfig_user() {
        for server in [
            ServerIdentity::Unavailable,
            ServerIdentity::NotAsked,
            ServerIdentity::Username(String::new()),
            ServerIdentity::Username(ANONYMOUS.into()),
        ] {
            let id = choose_identity(None, &server, Some("carol")).unwrap();
            assert_eq!(
                (id.name.as_str(), id.source),
                ("carol", IdentitySource::Kubeconfig),
                "{server:?}"
            );
        }
        // a blank --as does not count
        let id = choose_identity(Some("  "), &ServerIdentity::Unavailable, Some("carol")).unwrap();
        assert_eq!(id.name, "carol");
    }

    #[test]
    fn nobody_is_an_error() {
        let e = choose_identity(None, &ServerIdentity::Unavailable, None).unwrap_err();
        assert!(matches!(e, CliError::NoIdentity));
        assert!(e.to_string().contains("--as NAME"));
        assert!(choose_identity(None, &ServerIdentity::Unavailable, Some("")).is_err());
    }
}
