//! Who a peer is, as written in its certificate: a URI subject alternative name.
//!
//! - `fleet://cluster/<name>`: the spoke of cluster `<name>`;
//! - `fleet://admin/<name>`: a `fleetctl` user;
//! - `fleet://hub`: the hub.
//!
//! The hub takes a spoke's cluster from here and never from a request field.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Cluster(String),
    Admin(String),
    Hub,
}

pub const SCHEME: &str = "fleet://";

impl Identity {
    pub fn uri(&self) -> String {
        match self {
            Identity::Cluster(n) => format!("{SCHEME}cluster/{n}"),
            Identity::Admin(n) => format!("{SCHEME}admin/{n}"),
            Identity::Hub => format!("{SCHEME}hub"),
        }
    }

    pub fn from_uri(uri: &str) -> Option<Identity> {
        let rest = uri.strip_prefix(SCHEME)?;
        let valid = |n: &str| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        };
        if rest == "hub" {
            return Some(Identity::Hub);
        }
        let (kind, name) = rest.split_once('/')?;
        if !valid(name) {
            return None;
        }
        match kind {
            "cluster" => Some(Identity::Cluster(name.to_string())),
            "admin" => Some(Identity::Admin(name.to_string())),
            _ => None,
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Cluster(n) => write!(f, "spoke of cluster {n}"),
            Identity::Admin(n) => write!(f, "admin {n}"),
            Identity::Hub => f.write_str("hub"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_and_junk_is_refused() {
        for id in [
            Identity::Cluster("prod-eu-1".into()),
            Identity::Admin("alice".into()),
            Identity::Hub,
        ] {
            assert_eq!(Identity::from_uri(&id.uri()), Some(id));
        }
        assert_eq!(Identity::from_uri("fleet://cluster/../x"), None);
        assert_eq!(Identity::from_uri("fleet://cluster/"), None);
        assert_eq!(Identity::from_uri("https://cluster/a"), None);
        assert_eq!(Identity::from_uri("fleet://root/a"), None);
    }
}
