use axum::http::HeaderValue;

use super::*;

#[test]
fn token_ref_and_comparison() {
    assert_eq!(
        TokenRef::parse("ops/am-token", "token"),
        Some(TokenRef {
            namespace: "ops".into(),
            name: "am-token".into(),
            key: "token".into()
        })
    );
    assert_eq!(TokenRef::parse("nope", "token"), None);
    assert!(same(b"abc", b"abc"));
    assert!(!same(b"abc", b"abd"));
    assert!(!same(b"abc", b"abcd"));
}

#[test]
fn presented_token_is_the_trimmed_bearer_credential() {
    let mut h = HeaderMap::new();
    assert_eq!(presented(&h), None);
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer s3cret "),
    );
    assert_eq!(presented(&h), Some(b"s3cret".to_vec()));
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Basic czNjcmV0"),
    );
    assert_eq!(presented(&h), None);
}
