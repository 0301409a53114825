//! Configuration model and dscontrol grammar.
pub mod model;
pub use model::*;
