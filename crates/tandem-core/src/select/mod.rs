//! Server selection.
