//! Who a peer is, as written in its certificate: a URI subject alternative name.
//!
//! - `fleet://cluster/<name>`: the spoke of cluster `<name>`;
//! - `fleet://admin/<name>`, `fleet://release/<name>`, `fleet://viewer/<name>`:
//!   a `fleetctl` user and the [`Role`] it holds;
//! - `fleet://hub`: the hub.
//!
//! The hub takes a spoke's cluster from here and never from a request field.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Cluster(String),
    /// A `fleetctl` user with a role.
    User(Role, String),
    Hub,
}

/// What a `fleetctl` user may do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads: status, history, live diff, rollout status.
    Viewer,
    /// Releases: sync, refresh, rollout pause/resume/abort.
    Release,
    /// Everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Release, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Release => "release",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

pub const SCHEME: &str = "fleet://";

impl Identity {
    pub fn uri(&self) -> String {
        match self {
            Identity::Cluster(n) => format!("{SCHEME}cluster/{n}"),
            Identity::User(role, n) => format!("{SCHEME}{}/{n}", role.as_str()),
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
            _ => Role::parse(kind).map(|r| Identity::User(r, name.to_string())),
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Cluster(n) => write!(f, "spoke of cluster {n}"),
            Identity::User(role, n) => write!(f, "{} {n}", role.as_str()),
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
            Identity::User(Role::Admin, "alice".into()),
            Identity::User(Role::Viewer, "vic".into()),
            Identity::User(Role::Release, "rita".into()),
            Identity::Hub,
        ] {
            assert_eq!(Identity::from_uri(&id.uri()), Some(id));
        }
        assert_eq!(Identity::from_uri("fleet://cluster/../x"), None);
        assert_eq!(Identity::from_uri("fleet://cluster/"), None);
        assert_eq!(Identity::from_uri("https://cluster/a"), None);
        assert_eq!(Identity::from_uri("fleet://root/a"), None);
        assert!(Role::Viewer < Role::Release && Role::Release < Role::Admin);
    }
}
