//! Small HTTP facts every outbound client shares.

use std::time::Duration;

/// `Retry-After` in seconds from a response, if present and readable.
/// Absurd values (Confluence has sent 2^63-1) are kept whole; callers clamp.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs = v
        .trim()
        .parse::<u128>()
        .unwrap_or(u128::MAX)
        .min(u64::MAX as u128) as u64;
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_retry_after_does_not_overflow() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "9223372036854775807".parse().unwrap());
        assert!(retry_after(&h).unwrap() > Duration::from_secs(1 << 40));
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
    }
}
