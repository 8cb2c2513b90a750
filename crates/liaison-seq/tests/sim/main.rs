//! Sequencer tests over a simulated link: a pair of sequencers, a virtual clock and a seeded
//! lossy channel (quinn-proto's `Pair`, s2n-quic's drop model), one module per feature.

mod bow_out;
mod delivery;
mod hostile;
mod need_seq;
mod pair;
mod protocol;
mod resume;
mod rtt;
mod util;
