//! Options shared by the commands that open or serve sessions: authentication, session
//! limits and timers, sequencing mode, and QUIC certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use liaison_exchange::ExchangeConfig;
use liaison_session::{Authenticator, NoAuth, PskAuth, SequencingMode, SessionConfig};
use liaison_transport::QuicClientTls;

use crate::error::CliError;

/// How the two ends authenticate each other.
#[derive(Debug, Clone, Args)]
pub(crate) struct AuthArgs {
    /// File holding the pre-shared key both ends know: at least 16 bytes, or their hex
    /// spelling (surrounding whitespace is ignored). Generate one with
    /// `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > key`.
    #[arg(long, value_name = "FILE")]
    pub(crate) psk_file: Option<PathBuf>,
    /// The id the pre-shared key is known under on both ends.
    #[arg(long, value_name = "ID", default_value = "liaison")]
    pub(crate) psk_id: String,
    /// The name this end announces to its peer (bound into the key proofs).
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,
    /// Run without authentication: anyone who reaches the address gets a session. Explicit,
    /// never the default.
    #[arg(long, conflicts_with = "psk_file")]
    pub(crate) no_auth: bool,
}

impl AuthArgs {
    /// The authenticator these options ask for; `default_name` names this end unless
    /// `--name` does.
    pub(crate) fn authenticator(
        &self,
        default_name: &str,
    ) -> Result<Arc<dyn Authenticator>, CliError> {
        if self.no_auth {
            return Ok(Arc::new(NoAuth));
        }
        let Some(path) = &self.psk_file else {
            return Err(CliError::Usage(
                "no authentication chosen: pass --psk-file FILE (or --no-auth to run without)"
                    .into(),
            ));
        };
        let key = read_key(path)?;
        let name = self.name.as_deref().unwrap_or(default_name);
        Ok(Arc::new(
            PskAuth::new(self.psk_id.clone(), key)?.with_name(name),
        ))
    }
}

/// The key in `path`: hex if the trimmed content is an even number of hex digits, its raw
/// bytes otherwise.
fn read_key(path: &Path) -> Result<Vec<u8>, CliError> {
    let raw = std::fs::read(path)
        .map_err(|e| CliError::io(format!("cannot read {}", path.display()), e))?;
    let trimmed = raw.trim_ascii();
    let hex = trimmed.len() % 2 == 0 && trimmed.iter().all(u8::is_ascii_hexdigit);
    if hex && !trimmed.is_empty() {
        Ok(trimmed
            .chunks(2)
            .map(|pair| (nibble(pair[0]) << 4) | nibble(pair[1]))
            .collect())
    } else {
        Ok(trimmed.to_vec())
    }
}

/// The value of one hex digit (the caller checked it is one).
fn nibble(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// The sequencing modes of a session, as the command line spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModeArg {
    /// No sequence numbers: the transport's own guarantees (needs a reliable transport).
    None,
    /// Numbered frames, gap repair, delivery in order.
    Ordered,
    /// Numbered frames, gap repair, delivery as frames arrive.
    Unordered,
}

impl From<ModeArg> for SequencingMode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::None => Self::None,
            ModeArg::Ordered => Self::Ordered,
            ModeArg::Unordered => Self::Unordered,
        }
    }
}

/// Limits and timers of the sessions this end runs; the session runs with the smaller of
/// both ends' limits.
#[derive(Debug, Clone, Args)]
pub(crate) struct SessionArgs {
    /// Seconds without sending anything before a keepalive ping goes out.
    #[arg(long, value_name = "SECS", default_value = "15", value_parser = parse_secs)]
    pub(crate) keepalive: Duration,
    /// Seconds without receiving anything before the session ends (more than --keepalive).
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub(crate) idle_timeout: Duration,
    /// Seconds the whole handshake may take.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub(crate) handshake_timeout: Duration,
    /// Most exchanges open at once on a session, each way.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub(crate) max_exchanges: u32,
    /// Largest message payload, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = liaison_wire::DEFAULT_MAX_FRAME_PAYLOAD)]
    pub(crate) max_payload: u32,
    /// Frames buffered each way before the sender waits (and, when sequenced, frames kept
    /// for retransmission).
    #[arg(long, value_name = "FRAMES", default_value_t = 256)]
    pub(crate) buffer: u32,
    /// Messages a peer may send on one exchange before this end reads them.
    #[arg(long, value_name = "MESSAGES", default_value_t = 64)]
    pub(crate) window: u32,
}

impl SessionArgs {
    /// The session settings.
    pub(crate) fn session_config(&self) -> Result<SessionConfig, CliError> {
        let mut config = SessionConfig::default();
        config.keepalive_interval = self.keepalive;
        config.idle_timeout = self.idle_timeout;
        config.handshake_timeout = self.handshake_timeout;
        config.limits.max_exchanges = self.max_exchanges;
        config.limits.max_frame_payload = self.max_payload;
        config.limits.receive_buffer = self.buffer;
        config.limits.send_buffer = self.buffer;
        config.validate()?;
        Ok(config)
    }

    /// The exchange-layer settings.
    pub(crate) fn exchange_config(&self) -> Result<ExchangeConfig, CliError> {
        if self.window == 0 || self.max_exchanges == 0 {
            return Err(CliError::Usage(
                "--window and --max-exchanges must be at least 1".into(),
            ));
        }
        let mut config = ExchangeConfig::default();
        config.max_exchanges = self.max_exchanges;
        config.window = self.window;
        Ok(config)
    }
}

/// Seconds as a duration: a positive decimal number.
pub(crate) fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if secs <= 0.0 {
        return Err(format!("`{text}`: needs more than 0 seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{text}`: {e}"))
}

/// How a client verifies a QUIC server's certificate.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClientTlsArgs {
    /// PEM file of the certificates to trust for QUIC (the server's own certificate, as
    /// `liaison serve --cert-out` writes it, or its CA).
    #[arg(long, value_name = "PEM")]
    pub(crate) ca: Option<PathBuf>,
    /// Verify the server's certificate under this name instead of the host dialled.
    #[arg(long, value_name = "NAME")]
    pub(crate) server_name: Option<String>,
    /// Accept any QUIC server certificate without verification (still encrypted, but anyone
    /// on the path can impersonate the server): local experiments only.
    #[arg(long, conflicts_with = "ca")]
    pub(crate) insecure: bool,
}

impl ClientTlsArgs {
    /// The QUIC client settings, or a one-line error saying what is missing.
    pub(crate) fn quic_client(&self) -> Result<QuicClientTls, CliError> {
        let tls = if let Some(ca) = &self.ca {
            QuicClientTls::trust_pem_file(ca)?
        } else if self.insecure {
            tracing::warn!("QUIC server certificate not verified (--insecure)");
            QuicClientTls::dangerous_skip_verification()
        } else {
            return Err(CliError::Usage(
                "quic:// needs --ca PEM (the server's certificate, see `liaison serve --cert-out`) or --insecure"
                    .into(),
            ));
        };
        Ok(match &self.server_name {
            Some(name) => tls.with_server_name(name.clone()),
            None => tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_as_hex_or_raw_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let hex = dir.path().join("hex");
        std::fs::write(&hex, "00ff10Ab\n").unwrap();
        assert_eq!(read_key(&hex).unwrap(), vec![0x00, 0xff, 0x10, 0xab]);
        let raw = dir.path().join("raw");
        std::fs::write(&raw, "  correct horse battery staple \n").unwrap();
        assert_eq!(read_key(&raw).unwrap(), b"correct horse battery staple");
        let error = read_key(&dir.path().join("missing")).unwrap_err();
        assert!(error.to_string().starts_with("cannot read "), "{error}");
    }

    #[test]
    fn seconds_must_be_positive_numbers() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("soon").is_err());
    }

    #[test]
    fn a_missing_authentication_choice_is_a_usage_error() {
        let args = AuthArgs {
            psk_file: None,
            psk_id: "liaison".into(),
            name: None,
            no_auth: false,
        };
        let error = args.authenticator("x").err().unwrap();
        assert!(error.to_string().contains("--psk-file"), "{error}");
    }
}
