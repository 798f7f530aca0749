//! Helm charts, rendered natively (issue 11). So far only the foundation:
//! [`template`], a Go `text/template` engine. Charts are not rendered yet.

pub mod template;
