//! Opaque `continue` tokens for paginated lists, in the format of
//! kube-apiserver's etcd3 storage: base64 of
//! `{"v":"meta.k8s.io/v1","rv":N,"start":"<key>\u0000"}`.

use serde::{Deserialize, Serialize};

/// A token that cannot be decoded (400 BadRequest).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("continue key is not valid: {0}")]
pub struct ContinueError(pub String);

#[derive(Serialize, Deserialize)]
struct Token {
    v: String,
    rv: u64,
    start: String,
}

/// The position a continued list resumes at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continue {
    /// The resourceVersion of the first page.
    pub rv: u64,
    /// The first key (`namespace/name` or `name`) of the next page.
    pub start: String,
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            ALPHABET[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Decode standard or URL-safe base64 (padding optional).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Encode a continue token.
pub fn encode(c: &Continue) -> String {
    let t = Token {
        v: "meta.k8s.io/v1".to_string(),
        rv: c.rv,
        start: format!("{}\u{0}", c.start),
    };
    base64_encode(serde_json::to_string(&t).unwrap_or_default().as_bytes())
}

/// Decode a continue token.
pub fn decode(s: &str) -> Result<Continue, ContinueError> {
    let bytes = base64_decode(s).ok_or_else(|| ContinueError("not base64".into()))?;
    let t: Token = serde_json::from_slice(&bytes).map_err(|e| ContinueError(e.to_string()))?;
    if t.v != "meta.k8s.io/v1" {
        return Err(ContinueError(format!("unsupported version {}", t.v)));
    }
    if t.rv == 0 {
        return Err(ContinueError(
            "incorrect encoded start resourceVersion (version meta.k8s.io/v1)".into(),
        ));
    }
    Ok(Continue {
        rv: t.rv,
        start: t.start.trim_end_matches('\u{0}').to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_roundtrip() {
        for s in ["", "a", "ab", "abc", "abcd", "hello world!"] {
            assert_eq!(
                base64_decode(&base64_encode(s.as_bytes())),
                Some(s.as_bytes().to_vec())
            );
        }
        assert_eq!(base64_encode(b"hi"), "aGk=");
        assert_eq!(base64_decode("!!"), None);
    }

    #[test]
    fn token_roundtrip() {
        let c = Continue {
            rv: 42,
            start: "ns/pod-1".into(),
        };
        let tok = encode(&c);
        assert_eq!(decode(&tok), Ok(c));
        assert!(decode("garbage").is_err());
        assert!(decode(&base64_encode(b"{\"v\":\"x\",\"rv\":1,\"start\":\"\"}")).is_err());
    }
}
