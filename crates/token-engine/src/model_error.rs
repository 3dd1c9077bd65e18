//! Errors that mean storage handed back data the engine never writes.

/// A stored record contradicts itself (for example, an approved device authorization with no
/// grant). Answered as `server_error`.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("stored record is inconsistent")]
pub(crate) struct Inconsistent;
