//! liaison's remote session-state service.

#![deny(missing_docs)]
#![forbid(unsafe_code)]
