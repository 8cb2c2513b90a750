//! Frame kinds: the first byte of every frame header (PROTOCOL.md §4).

use std::fmt;

use crate::{Flags, WireError};

/// What a frame is, from byte 0 of its header (PROTOCOL.md §4).
///
/// Numbers are grouped by the layer that defines the payload: `0x01..=0x0f` handshake
/// (`liaison-session`), `0x10..=0x1f` session control (`liaison-session`, `liaison-seq`),
/// `0x20..=0x2f` exchanges (`liaison-exchange`), `0x30..=0x3f` resume (`liaison-resume`).
/// `0x00` and every number not listed here are refused with [`WireError::UnknownKind`].
///
/// Two helpers sort kinds for the decoder and the layers above:
/// [`is_data`](Self::is_data) kinds carry application bytes and are bounded by
/// [`Limits::max_frame_payload`](crate::Limits::max_frame_payload); all others are control
/// kinds bounded by [`Limits::max_control_payload`](crate::Limits::max_control_payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
#[non_exhaustive]
pub enum FrameKind {
    /// Client → server, first frame of a connection: a [`VersionOffer`](crate::VersionOffer) (§6).
    Hello = 0x01,
    /// Server → client: the chosen protocol version (§6, §7.1).
    Welcome = 0x02,
    /// Server → client during the handshake: the connection is refused, with a reason (§7.1).
    Reject = 0x03,
    /// Server → client: the server's fresh nonce, opening mutual authentication (§7.2).
    AuthChallenge = 0x04,
    /// Client → server: the client's fresh nonce and its proof over both nonces (§7.2).
    AuthProof = 0x05,
    /// Server → client: the verdict; on success the server's proof over both nonces (§7.2).
    AuthResult = 0x06,
    /// Either direction: configuration proposal and answer (limits, keepalive, sequencing
    /// mode, application parameters, root capability) (§7.3).
    Config = 0x07,

    /// Either direction: cumulative acknowledgement carried in the header's `ack` field (§8.1).
    Ack = 0x10,
    /// Either direction: sequence numbers the sender is missing, as a range set (§8.2).
    NeedSeq = 0x11,
    /// Either direction: the sender ends the session, with a reason; the
    /// [`IGNORE_SEQ`](Flags::IGNORE_SEQ) flag bows out of sequencing (§8.3).
    Bye = 0x12,
    /// Either direction: keepalive probe (§8.4).
    Ping = 0x13,
    /// Either direction: answer to a [`Ping`](Self::Ping), echoing its payload (§8.4).
    Pong = 0x14,

    /// Either direction: opens the exchange named in the header (§9.1).
    ExchangeBegin = 0x20,
    /// Either direction: one application message of the exchange named in the header (§9.2).
    Data = 0x21,
    /// Either direction: the sender is done with the exchange (§9.3).
    ExchangeEnd = 0x22,
    /// Either direction: the sender abandons the exchange; the peer stops work on it (§9.4).
    ExchangeCancel = 0x23,
    /// Either direction: grants the peer more messages on the exchange (u32 LE) (§9.5).
    ExchangeCredit = 0x24,

    /// Client → server: resume a session by id, with a proof of the resume secret (§10.1).
    Resume = 0x30,
    /// Server → client: the session was resumed or is new (§10.1).
    ResumeAck = 0x31,
    /// Client → server: the client's session state, for a server that lost it (§10.2).
    ResumeState = 0x32,
    /// Server → client: the state was rebuilt (§10.2).
    ResumeStateAck = 0x33,
}

impl FrameKind {
    /// Every kind this version defines, in numeric order.
    pub const ALL: &'static [Self] = &[
        Self::Hello,
        Self::Welcome,
        Self::Reject,
        Self::AuthChallenge,
        Self::AuthProof,
        Self::AuthResult,
        Self::Config,
        Self::Ack,
        Self::NeedSeq,
        Self::Bye,
        Self::Ping,
        Self::Pong,
        Self::ExchangeBegin,
        Self::Data,
        Self::ExchangeEnd,
        Self::ExchangeCancel,
        Self::ExchangeCredit,
        Self::Resume,
        Self::ResumeAck,
        Self::ResumeState,
        Self::ResumeStateAck,
    ];

    /// The kind's number on the wire.
    pub const fn to_u8(self) -> u8 {
        self as u8
    }

    /// The kind's name as PROTOCOL.md spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Hello => "Hello",
            Self::Welcome => "Welcome",
            Self::Reject => "Reject",
            Self::AuthChallenge => "AuthChallenge",
            Self::AuthProof => "AuthProof",
            Self::AuthResult => "AuthResult",
            Self::Config => "Config",
            Self::Ack => "Ack",
            Self::NeedSeq => "NeedSeq",
            Self::Bye => "Bye",
            Self::Ping => "Ping",
            Self::Pong => "Pong",
            Self::ExchangeBegin => "ExchangeBegin",
            Self::Data => "Data",
            Self::ExchangeEnd => "ExchangeEnd",
            Self::ExchangeCancel => "ExchangeCancel",
            Self::ExchangeCredit => "ExchangeCredit",
            Self::Resume => "Resume",
            Self::ResumeAck => "ResumeAck",
            Self::ResumeState => "ResumeState",
            Self::ResumeStateAck => "ResumeStateAck",
        }
    }

    /// Whether the payload is application bytes, bounded by `max_frame_payload` (§5):
    /// [`ExchangeBegin`](Self::ExchangeBegin) (which may carry the first message),
    /// [`Data`](Self::Data) and [`ResumeState`](Self::ResumeState).
    pub const fn is_data(self) -> bool {
        matches!(self, Self::ExchangeBegin | Self::Data | Self::ResumeState)
    }

    /// Whether the payload is protocol control, bounded by `max_control_payload` (§5):
    /// every kind that is not [`is_data`](Self::is_data).
    pub const fn is_control(self) -> bool {
        !self.is_data()
    }

    /// Whether the kind belongs to session establishment (§7): only valid before the
    /// handshake completes.
    pub const fn is_handshake(self) -> bool {
        matches!(
            self,
            Self::Hello
                | Self::Welcome
                | Self::Reject
                | Self::AuthChallenge
                | Self::AuthProof
                | Self::AuthResult
                | Self::Config
        )
    }

    /// Whether the header's `exchange` field names an exchange (§9). For establishing kinds
    /// ([`is_establishing`](Self::is_establishing)) it carries a copy tag instead; for every
    /// other kind it must be zero (§2).
    pub const fn is_exchange(self) -> bool {
        matches!(
            self,
            Self::ExchangeBegin
                | Self::Data
                | Self::ExchangeEnd
                | Self::ExchangeCancel
                | Self::ExchangeCredit
        )
    }

    /// Whether the kind belongs to session resumption (§10).
    pub const fn is_resume(self) -> bool {
        matches!(
            self,
            Self::Resume | Self::ResumeAck | Self::ResumeState | Self::ResumeStateAck
        )
    }

    /// Whether the kind establishes a session: of the handshake proper (§7) or of a resume
    /// (§10). Over a lossy transport such frames may be repeated, and the header's
    /// `exchange` field carries their copy tag (§2).
    pub const fn is_establishing(self) -> bool {
        self.is_handshake() || self.is_resume()
    }

    /// The flags a frame of this kind may carry (§3). A decoder refuses any other bit with
    /// [`WireError::Reserved`].
    ///
    /// [`SEQ`](Flags::SEQ) and [`ACK`](Flags::ACK) are allowed on every kind;
    /// [`END`](Flags::END) only on [`ExchangeBegin`](Self::ExchangeBegin) and
    /// [`Data`](Self::Data); [`IGNORE_SEQ`](Flags::IGNORE_SEQ) only on [`Bye`](Self::Bye).
    pub const fn allowed_flags(self) -> Flags {
        let base = Flags::SEQ.union(Flags::ACK);
        match self {
            Self::ExchangeBegin | Self::Data => base.union(Flags::END),
            Self::Bye => base.union(Flags::IGNORE_SEQ),
            _ => base,
        }
    }
}

impl TryFrom<u8> for FrameKind {
    type Error = WireError;

    fn try_from(byte: u8) -> Result<Self, Self::Error> {
        Ok(match byte {
            0x01 => Self::Hello,
            0x02 => Self::Welcome,
            0x03 => Self::Reject,
            0x04 => Self::AuthChallenge,
            0x05 => Self::AuthProof,
            0x06 => Self::AuthResult,
            0x07 => Self::Config,
            0x10 => Self::Ack,
            0x11 => Self::NeedSeq,
            0x12 => Self::Bye,
            0x13 => Self::Ping,
            0x14 => Self::Pong,
            0x20 => Self::ExchangeBegin,
            0x21 => Self::Data,
            0x22 => Self::ExchangeEnd,
            0x23 => Self::ExchangeCancel,
            0x24 => Self::ExchangeCredit,
            0x30 => Self::Resume,
            0x31 => Self::ResumeAck,
            0x32 => Self::ResumeState,
            0x33 => Self::ResumeStateAck,
            other => return Err(WireError::UnknownKind(other)),
        })
    }
}

impl From<FrameKind> for u8 {
    fn from(kind: FrameKind) -> Self {
        kind.to_u8()
    }
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_maps_to_its_kind_or_unknown() {
        for byte in 0..=u8::MAX {
            match FrameKind::try_from(byte) {
                Ok(kind) => {
                    assert_eq!(kind.to_u8(), byte);
                    assert!(FrameKind::ALL.contains(&kind));
                }
                Err(err) => {
                    assert_eq!(err, WireError::UnknownKind(byte));
                    assert!(FrameKind::ALL.iter().all(|k| k.to_u8() != byte));
                }
            }
        }
    }

    #[test]
    fn all_is_sorted_and_complete() {
        let bytes: Vec<u8> = FrameKind::ALL.iter().map(|k| k.to_u8()).collect();
        let mut sorted = bytes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(bytes, sorted);
        let known = (0..=u8::MAX)
            .filter(|b| FrameKind::try_from(*b).is_ok())
            .count();
        assert_eq!(known, FrameKind::ALL.len());
    }

    #[test]
    fn zero_is_not_a_kind() {
        assert_eq!(FrameKind::try_from(0), Err(WireError::UnknownKind(0)));
    }

    #[test]
    fn classification() {
        assert!(FrameKind::Data.is_data() && !FrameKind::Data.is_control());
        assert!(FrameKind::ResumeState.is_data());
        assert!(FrameKind::Hello.is_handshake() && FrameKind::Hello.is_control());
        assert!(FrameKind::ExchangeCredit.is_exchange());
        assert!(!FrameKind::Ack.is_exchange());
        assert!(FrameKind::ResumeAck.is_resume());
        assert!(FrameKind::Bye.allowed_flags().contains(Flags::IGNORE_SEQ));
        assert!(!FrameKind::Data.allowed_flags().contains(Flags::IGNORE_SEQ));
        assert!(FrameKind::Data.allowed_flags().contains(Flags::END));
        assert!(!FrameKind::Ping.allowed_flags().contains(Flags::END));
        for kind in FrameKind::ALL {
            assert_eq!(kind.to_string(), kind.name());
            assert!(kind.allowed_flags().contains(Flags::SEQ | Flags::ACK));
        }
    }
}
