//! The ids the simulated container runtime reports: container ids and image
//! digests, stable hashes of what they name.

use sha2::{Digest, Sha256};

pub(super) fn hex_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

pub(super) fn image_ref(image: &str) -> String {
    let (name, _) = image.split_once('@').unwrap_or((image, ""));
    let without_tag = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    };
    let full = if without_tag.contains('/') {
        if without_tag
            .split('/')
            .next()
            .is_some_and(|h| h.contains('.') || h.contains(':'))
        {
            without_tag.to_string()
        } else {
            format!("docker.io/{without_tag}")
        }
    } else {
        format!("docker.io/library/{without_tag}")
    };
    format!("{full}@sha256:{}", hex_id(&[image]))
}
