//! The kube client paths against a scripted API server.
