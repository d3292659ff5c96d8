//! Authentication: `Authorization: Bearer <token>`, the token read from a
//! Secret at request time and compared in constant time.

use axum::http::{header, HeaderMap};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use subtle::ConstantTimeEq;

use super::Intake;

/// Where the bearer token lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRef {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

impl TokenRef {
    /// Parse `NAMESPACE/NAME`.
    pub fn parse(s: &str, key: &str) -> Option<TokenRef> {
        let (ns, name) = s.split_once('/')?;
        (!ns.is_empty() && !name.is_empty()).then(|| TokenRef {
            namespace: ns.into(),
            name: name.into(),
            key: key.into(),
        })
    }
}

/// The token a request presents (`Authorization: Bearer <token>`, trimmed).
pub(super) fn presented(headers: &HeaderMap) -> Option<Vec<u8>> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().as_bytes().to_vec())
}

/// Constant-time comparison of two byte strings (`subtle`): the time does
/// not depend on where they differ (only on their lengths).
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

impl Intake {
    /// The token in the Secret (trimmed; never empty).
    pub(super) async fn expected_token(&self) -> Result<Vec<u8>, String> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.token.namespace);
        let s = api
            .get_opt(&self.token.name)
            .await
            .map_err(|e| format!("cannot read the token secret: {e}"))?
            .ok_or_else(|| "the token secret does not exist".to_string())?;
        let v = s
            .data
            .as_ref()
            .and_then(|d| d.get(&self.token.key))
            .map(|b| b.0.clone())
            .ok_or_else(|| format!("the token secret has no key {:?}", self.token.key))?;
        let trimmed = String::from_utf8_lossy(&v).trim().as_bytes().to_vec();
        if trimmed.is_empty() {
            return Err("the token in the secret is empty".into());
        }
        Ok(trimmed)
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
