//! The path manager's settings language: the multipath.conf keywords pathrig implements
//! ([`keywords`]), multipath.conf text ([`multipath_conf`]), the scenario's `[manager]` table
//! ([`decode`]), the per-map resolution of both into effective settings ([`resolve`]), and the
//! writer that renders effective settings back to multipath.conf text ([`write`]).
//!
//! Diagnostics, spans and units come from `pathrig-diag`, shared with the scenario language.

pub mod decode;
pub mod keywords;
pub mod multipath_conf;
pub mod resolve;
pub mod write;
