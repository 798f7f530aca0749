//! fleet's pure rendering core.
//!
//! Everything here is a function over data: a fleet repo tree (handed in as a
//! [`source::FileSource`]) and a cluster go in, a [`state::DesiredState`] comes
//! out. No sockets, no clocks, no Git, no database: the hub and `fleetctl`
//! wrap these functions with I/O at their edges, so both produce the same bytes.

pub mod diff;
pub mod digest;
pub mod helm;
pub mod kustomize;
pub mod model;
pub mod pins;
pub mod plain;
pub mod render;
pub mod resource;
pub mod sops;
pub mod source;
pub mod state;
pub mod validate;
pub mod window;
pub mod yaml;
pub mod yaml_edit;

pub use render::{AppRender, render_app, select_directory};
pub use resource::{Resource, ResourceId};
pub use state::{AppState, CommitMeta, DesiredState, RenderError, SyncPolicy};
