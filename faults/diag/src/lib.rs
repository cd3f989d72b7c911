//! Diagnostics shared by pathrig's two languages: the scenario file (crate `faults`) and the
//! path manager's settings and multipath.conf text (crate `path-manager`).
//!
//! Owns the user-facing error types ([`Diagnostic`], [`Diagnostics`]), the [`Report`] that
//! collects errors while a file is decoded, the spanned TOML reading helpers ([`reader`]) and
//! the duration / size units both languages accept ([`units`]). Pure: no IO, no clock.

mod diag;
pub mod reader;
pub mod units;

pub use diag::{Diagnostic, Diagnostics, Report};
