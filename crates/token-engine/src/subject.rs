//! The embedding application's users, as far as the engine needs them: whether a user may
//! still hold authority. The engine asks when a user's decision is recorded (consent,
//! device approval) and when tokens are first issued from it (code and device-code
//! redemption), so a user disabled or removed between those steps gets nothing, whatever
//! order the steps ran in.

use async_trait::async_trait;

/// Whether a user may still hold authority.
#[async_trait]
pub trait SubjectStatus: Send + Sync {
    /// Whether `subject` exists and is enabled.
    ///
    /// # Errors
    ///
    /// A storage failure; the engine answers `server_error` and changes nothing.
    async fn is_active(
        &self,
        subject: &str,
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>>;
}
