//! The health thread: advisors, manager and SASP sessions (filled in by the lead).
pub mod sasp;
