//! How fleet's tools say when something happened (`fleetctl status`, the
//! hub's status page): one wording everywhere.

/// `12s ago`, `3m ago`, `5h ago`, `2d ago`; `never` for time 0 (Unix seconds).
pub fn ago(now: i64, t: i64) -> String {
    if t == 0 {
        return "never".into();
    }
    let d = (now - t).max(0);
    match d {
        0..=59 => format!("{d}s ago"),
        60..=3599 => format!("{}m ago", d / 60),
        3600..=86399 => format!("{}h ago", d / 3600),
        _ => format!("{}d ago", d / 86400),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn units() {
        assert_eq!(super::ago(100, 0), "never");
        assert_eq!(super::ago(100, 99), "1s ago");
        assert_eq!(super::ago(4000, 100), "1h ago");
        assert_eq!(super::ago(100, 200), "0s ago");
    }
}
