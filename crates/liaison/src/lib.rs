//! liaison: one crate that re-exports every layer.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use liaison_exchange as exchange;
pub use liaison_resume as resume;
pub use liaison_seq as seq;
pub use liaison_session as session;
pub use liaison_state as state;
pub use liaison_transport as transport;
pub use liaison_wire as wire;
