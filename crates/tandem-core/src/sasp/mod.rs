//! SASP (RFC 4678) (temporary: helper S owns this file)
pub mod gwm;
