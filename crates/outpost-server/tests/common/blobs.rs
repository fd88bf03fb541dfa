//! What the blob tests share: test bytes, the blob's path, and the `POST` that says where an
//! upload stands.

use super::Device;
use outpost_protocol::blobs::{BlobHash, BlobStart, BlobStatus};
use reqwest::Method;

/// `len` bytes that differ with `seed` (so every test blob has its own name).
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn path(hash: &BlobHash) -> String {
    format!("/v1/blobs/{hash}")
}

/// `POST`: begins or resumes the upload of `hash`.
pub async fn post(device: &Device, hash: &BlobHash, size: usize) -> reqwest::Response {
    device
        .request(Method::POST, &path(hash))
        .json(&BlobStart { size: size as u64 })
        .send()
        .await
        .expect("post")
}

/// `POST`, answered 200: where the upload of `hash` stands (what a device asks before sending).
pub async fn status(device: &Device, hash: &BlobHash, size: usize) -> BlobStatus {
    let resp = post(device, hash, size).await;
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    resp.json().await.expect("status")
}
