//! Koncorde-compatible realtime filters: validation, normalization, indexed matching.
//!
//! (Being written: see `filters/README.md` once it lands.)
