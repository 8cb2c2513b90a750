//! The integration matrix: every transport × {plain, lossy ordered, lossy unordered} ×
//! {cut and resume, graceful close, abort, scope cancel} × {request/response, streaming,
//! state service}. In every cell no message is lost, duplicated or delivered to another
//! exchange, every pending eventual value resolves when the session ends (Ok when it was
//! pending across a resume), and capabilities are revoked after it.
//!
//! Each cell is a test of its own, named by its coordinates
//! (`tcp::lossy_ordered::abort::streaming`), so a failure says which cell broke; one line
//! in a list below adds a value to a dimension.

use liaison_tests::matrix::{run_cell, Ending, Link, Workload};
use liaison_transport::LoopbackKind;

/// Expands into one test per combination of the values listed, as nested modules
/// `transport::link::ending::workload`.
macro_rules! matrix {
    (
        transports: $transports:tt,
        links: $links:tt,
        endings: $endings:tt,
        workloads: $workloads:tt $(,)?
    ) => {
        matrix!(@transport $transports $links $endings $workloads);
    };
    (@transport [$($t:ident => $tv:expr),* $(,)?] $links:tt $endings:tt $workloads:tt) => {
        $(mod $t {
            matrix!(@link ($tv) $links $endings $workloads);
        })*
    };
    (@link ($tv:expr) [$($l:ident => $lv:expr),* $(,)?] $endings:tt $workloads:tt) => {
        $(mod $l {
            matrix!(@ending ($tv, $lv) $endings $workloads);
        })*
    };
    (@ending ($tv:expr, $lv:expr) [$($e:ident => $ev:expr),* $(,)?] $workloads:tt) => {
        $(mod $e {
            matrix!(@workload ($tv, $lv, $ev) $workloads);
        })*
    };
    (@workload ($tv:expr, $lv:expr, $ev:expr) [$($w:ident => $wv:expr),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $w() {
                crate::run_cell($tv, $lv, $ev, $wv).await;
            }
        )*
    };
}

matrix! {
    transports: [
        memory => crate::LoopbackKind::Memory,
        tcp => crate::LoopbackKind::Tcp,
        unix => crate::LoopbackKind::Unix,
        quic => crate::LoopbackKind::Quic,
        quic_dgram => crate::LoopbackKind::QuicDatagram,
    ],
    links: [
        plain => crate::Link::Plain,
        lossy_ordered => crate::Link::LossyOrdered,
        lossy_unordered => crate::Link::LossyUnordered,
    ],
    endings: [
        cut_resume => crate::Ending::CutResume,
        close => crate::Ending::Close,
        abort => crate::Ending::Abort,
        scope_cancel => crate::Ending::ScopeCancel,
    ],
    workloads: [
        request_response => crate::Workload::RequestResponse,
        streaming => crate::Workload::Streaming,
        state_service => crate::Workload::State,
    ],
}
