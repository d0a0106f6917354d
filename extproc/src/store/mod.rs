//! Where live spend lives: Redis in production, an in-process map for demos.
pub mod keys;
