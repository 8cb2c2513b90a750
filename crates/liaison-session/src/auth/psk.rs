//! [`PskAuth`]: pre-shared key, mutual HMAC-SHA256 challenge-response over fresh nonces
//! from both sides (docs/SESSION.md §3.2).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{AuthContext, AuthError, AuthState, AuthStep, Authenticator, PeerIdentity, Role};
use crate::messages::{decode, encode, Blob};
use crate::SessionError;

type HmacSha256 = Hmac<Sha256>;

/// Shortest key [`PskKey::new`] accepts, in bytes.
pub const MIN_KEY_LEN: usize = 16;
/// Longest key id or name, in bytes.
const MAX_ID_LEN: usize = 256;
/// Nonce length, in bytes.
const NONCE_LEN: usize = 32;

/// The label of the server's proof (docs/SESSION.md §3.2).
const SERVER_LABEL: &[u8] = b"liaison server";
/// The label of the client's proof (docs/SESSION.md §3.2).
const CLIENT_LABEL: &[u8] = b"liaison client";

/// A pre-shared key: at least [`MIN_KEY_LEN`] bytes. Its `Debug` does not show the bytes.
#[derive(Clone)]
pub struct PskKey(Arc<[u8]>);

impl PskKey {
    /// A key from `bytes`; shorter than [`MIN_KEY_LEN`] is refused.
    pub fn new(bytes: impl AsRef<[u8]>) -> Result<Self, SessionError> {
        let bytes = bytes.as_ref();
        if bytes.len() < MIN_KEY_LEN {
            return Err(SessionError::InvalidConfig(format!(
                "pre-shared key of {} bytes, at least {MIN_KEY_LEN} required",
                bytes.len()
            )));
        }
        Ok(Self(bytes.into()))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }
}

impl fmt::Debug for PskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PskKey({} bytes)", self.0.len())
    }
}

/// Pre-shared key authentication.
///
/// A client holds one key and its id. A server holds keys by id and looks the client's up;
/// an unknown id is not revealed: the server answers with a proof under a random key, so
/// the client's verification fails exactly as with a wrong key.
///
/// Both proofs bind the protocol version, the key id, both names and both fresh nonces, so
/// a proof recorded on one connection fails on any other.
///
/// ```
/// use liaison_session::PskAuth;
///
/// let client = PskAuth::new("app-1", [7u8; 32])?.with_name("worker");
/// let server = PskAuth::new("app-1", [7u8; 32])?.with_key("app-2", [9u8; 32])?;
/// # let _ = (client, server);
/// # Ok::<(), liaison_session::SessionError>(())
/// ```
#[derive(Clone)]
pub struct PskAuth {
    key_id: String,
    key: PskKey,
    keys: HashMap<String, PskKey>,
    name: String,
}

impl PskAuth {
    /// Authenticates with `key` under `key_id`. As a server, accepts that key; add more
    /// with [`with_key`](Self::with_key). The local name defaults to the key id.
    pub fn new(key_id: impl Into<String>, key: impl AsRef<[u8]>) -> Result<Self, SessionError> {
        let key_id = key_id.into();
        check_id("key id", &key_id)?;
        let key = PskKey::new(key)?;
        let keys = HashMap::from([(key_id.clone(), key.clone())]);
        Ok(Self {
            name: key_id.clone(),
            key_id,
            key,
            keys,
        })
    }

    /// Also accepts `key` under `key_id` (server side).
    pub fn with_key(
        mut self,
        key_id: impl Into<String>,
        key: impl AsRef<[u8]>,
    ) -> Result<Self, SessionError> {
        let key_id = key_id.into();
        check_id("key id", &key_id)?;
        self.keys.insert(key_id, PskKey::new(key)?);
        Ok(self)
    }

    /// Announces `name` to the peer (bound into the proofs; the peer sees it in
    /// [`PeerIdentity::PreSharedKey`]). Names longer than 256 bytes are cut.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        let mut name = name.into();
        let mut end = name.len().min(MAX_ID_LEN);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
        self.name = name;
        self
    }

    /// The key id a client presents.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

impl fmt::Debug for PskAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("PskAuth")
            .field("key_id", &self.key_id)
            .field("name", &self.name)
            .field("accepted_key_ids", &ids)
            .finish_non_exhaustive()
    }
}

fn check_id(what: &str, id: &str) -> Result<(), SessionError> {
    if id.len() > MAX_ID_LEN {
        return Err(SessionError::InvalidConfig(format!(
            "{what} of {} bytes, at most {MAX_ID_LEN}",
            id.len()
        )));
    }
    Ok(())
}

impl Authenticator for PskAuth {
    fn mechanism(&self) -> &str {
        "psk-hmac-sha256"
    }

    fn start(&self, role: Role, ctx: &mut AuthContext<'_>) -> Box<dyn AuthState> {
        let mut nonce = [0u8; NONCE_LEN];
        ctx.rng.fill_bytes(&mut nonce);
        match role {
            Role::Client => Box::new(ClientState {
                version: ctx.version,
                key_id: self.key_id.clone(),
                key: self.key.clone(),
                name: self.name.clone(),
                nonce,
                sent_start: false,
                done: false,
            }),
            Role::Server => {
                // A random key for unknown ids, so that they fail like a wrong key.
                let mut decoy = [0u8; 32];
                ctx.rng.fill_bytes(&mut decoy);
                Box::new(ServerState {
                    version: ctx.version,
                    keys: self.keys.clone(),
                    decoy: PskKey(decoy.as_slice().into()),
                    name: self.name.clone(),
                    nonce,
                    pending: None,
                    done: false,
                })
            }
        }
    }
}

/// First message, client → server, in `AuthProof`.
#[derive(Serialize, Deserialize)]
struct ClientStart {
    key_id: String,
    name: String,
    nonce: Blob,
}

/// Second message, server → client, in `AuthChallenge`.
#[derive(Serialize, Deserialize)]
struct ServerProof {
    name: String,
    nonce: Blob,
    proof: Blob,
}

/// Third message, client → server, in `AuthProof`.
#[derive(Serialize, Deserialize)]
struct ClientProof {
    proof: Blob,
}

/// The transcript both proofs cover (docs/SESSION.md §3.2): the version, then the key id
/// and both names with a u32 LE length prefix each, then both nonces.
struct Transcript<'a> {
    version: u16,
    key_id: &'a str,
    client_name: &'a str,
    server_name: &'a str,
    client_nonce: &'a [u8; NONCE_LEN],
    server_nonce: &'a [u8; NONCE_LEN],
}

impl Transcript<'_> {
    fn mac(&self, key: &PskKey, label: &[u8]) -> HmacSha256 {
        let mut mac = key.mac();
        mac.update(label);
        mac.update(&self.version.to_le_bytes());
        for field in [self.key_id, self.client_name, self.server_name] {
            // Ids and names are at most MAX_ID_LEN bytes (checked on decode), so the
            // length fits a u32.
            let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
            mac.update(&len.to_le_bytes());
            mac.update(field.as_bytes());
        }
        mac.update(self.client_nonce);
        mac.update(self.server_nonce);
        mac
    }

    fn prove(&self, key: &PskKey, label: &[u8]) -> [u8; 32] {
        self.mac(key, label).finalize().into_bytes().into()
    }

    /// Constant-time check of `proof`.
    fn verify(&self, key: &PskKey, label: &[u8], proof: &[u8]) -> Result<(), AuthError> {
        self.mac(key, label)
            .verify_slice(proof)
            .map_err(|_| AuthError::BadProof)
    }
}

fn malformed(what: &str, err: impl fmt::Display) -> AuthError {
    AuthError::Malformed(format!("{what}: {err}"))
}

fn nonce(blob: &Blob) -> Result<[u8; NONCE_LEN], AuthError> {
    blob.to_array()
        .ok_or_else(|| AuthError::Malformed(format!("nonce is not {NONCE_LEN} bytes")))
}

fn check_wire_id(what: &str, id: &str) -> Result<(), AuthError> {
    if id.len() > MAX_ID_LEN {
        return Err(AuthError::Malformed(format!("{what} too long")));
    }
    Ok(())
}

struct ClientState {
    version: u16,
    key_id: String,
    key: PskKey,
    name: String,
    nonce: [u8; NONCE_LEN],
    sent_start: bool,
    done: bool,
}

impl AuthState for ClientState {
    fn step(&mut self, incoming: Option<&[u8]>) -> Result<AuthStep, AuthError> {
        if self.done {
            return Err(AuthError::Unexpected("message after authentication ended"));
        }
        match (self.sent_start, incoming) {
            (false, None) => {
                self.sent_start = true;
                let start = ClientStart {
                    key_id: self.key_id.clone(),
                    name: self.name.clone(),
                    nonce: Blob(self.nonce.to_vec()),
                };
                let bytes = encode(&start).map_err(|e| AuthError::Other(e.to_string()))?;
                Ok(AuthStep::Send(bytes))
            }
            (true, Some(bytes)) => {
                self.done = true;
                let server: ServerProof =
                    decode(bytes).map_err(|e| malformed("server proof", e))?;
                check_wire_id("server name", &server.name)?;
                let server_nonce = nonce(&server.nonce)?;
                let transcript = Transcript {
                    version: self.version,
                    key_id: &self.key_id,
                    client_name: &self.name,
                    server_name: &server.name,
                    client_nonce: &self.nonce,
                    server_nonce: &server_nonce,
                };
                transcript.verify(&self.key, SERVER_LABEL, &server.proof.0)?;
                let proof = ClientProof {
                    proof: Blob(transcript.prove(&self.key, CLIENT_LABEL).to_vec()),
                };
                let send = encode(&proof).map_err(|e| AuthError::Other(e.to_string()))?;
                Ok(AuthStep::Done {
                    identity: PeerIdentity::PreSharedKey {
                        key_id: self.key_id.clone(),
                        name: server.name,
                    },
                    send: Some(send),
                })
            }
            (false, Some(_)) => Err(AuthError::Unexpected("server spoke before the client")),
            (true, None) => Err(AuthError::Unexpected("empty step")),
        }
    }
}

/// What the server remembers between its two steps.
struct Pending {
    key_id: String,
    key: PskKey,
    known: bool,
    client_name: String,
    client_nonce: [u8; NONCE_LEN],
}

struct ServerState {
    version: u16,
    keys: HashMap<String, PskKey>,
    decoy: PskKey,
    name: String,
    nonce: [u8; NONCE_LEN],
    pending: Option<Pending>,
    done: bool,
}

impl AuthState for ServerState {
    fn step(&mut self, incoming: Option<&[u8]>) -> Result<AuthStep, AuthError> {
        if self.done {
            return Err(AuthError::Unexpected("message after authentication ended"));
        }
        let Some(bytes) = incoming else {
            return Err(AuthError::Unexpected("the server never speaks first"));
        };
        match self.pending.take() {
            None => {
                let start: ClientStart = decode(bytes).map_err(|e| malformed("client start", e))?;
                check_wire_id("key id", &start.key_id)?;
                check_wire_id("client name", &start.name)?;
                let client_nonce = nonce(&start.nonce)?;
                let (key, known) = match self.keys.get(&start.key_id) {
                    Some(key) => (key.clone(), true),
                    None => (self.decoy.clone(), false),
                };
                let transcript = Transcript {
                    version: self.version,
                    key_id: &start.key_id,
                    client_name: &start.name,
                    server_name: &self.name,
                    client_nonce: &client_nonce,
                    server_nonce: &self.nonce,
                };
                let answer = ServerProof {
                    name: self.name.clone(),
                    nonce: Blob(self.nonce.to_vec()),
                    proof: Blob(transcript.prove(&key, SERVER_LABEL).to_vec()),
                };
                let send = encode(&answer).map_err(|e| AuthError::Other(e.to_string()))?;
                self.pending = Some(Pending {
                    key_id: start.key_id,
                    key,
                    known,
                    client_name: start.name,
                    client_nonce,
                });
                Ok(AuthStep::Send(send))
            }
            Some(pending) => {
                self.done = true;
                let proof: ClientProof = decode(bytes).map_err(|e| malformed("client proof", e))?;
                let transcript = Transcript {
                    version: self.version,
                    key_id: &pending.key_id,
                    client_name: &pending.client_name,
                    server_name: &self.name,
                    client_nonce: &pending.client_nonce,
                    server_nonce: &self.nonce,
                };
                transcript.verify(&pending.key, CLIENT_LABEL, &proof.proof.0)?;
                if !pending.known {
                    // Unreachable with a random decoy key, kept as a second barrier.
                    return Err(AuthError::BadProof);
                }
                Ok(AuthStep::Done {
                    identity: PeerIdentity::PreSharedKey {
                        key_id: pending.key_id,
                        name: pending.client_name,
                    },
                    send: None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn run(
        client: &PskAuth,
        server: &PskAuth,
        seed: u64,
    ) -> (Result<AuthStep, AuthError>, Vec<Bytes>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut ctx = AuthContext::new(1, None, &mut rng);
        let mut c = client.start(Role::Client, &mut ctx);
        let mut s = server.start(Role::Server, &mut ctx);
        let mut sent = Vec::new();
        let AuthStep::Send(m1) = c.step(None).expect("first step") else {
            panic!("client must speak first");
        };
        sent.push(m1.clone());
        let AuthStep::Send(m2) = s.step(Some(&m1)).expect("server answer") else {
            panic!("server must answer");
        };
        let m3 = match c.step(Some(&m2)) {
            Ok(AuthStep::Done { send: Some(m3), .. }) => m3,
            other => return (other, sent),
        };
        sent.push(m3.clone());
        (s.step(Some(&m3)), sent)
    }

    #[test]
    fn matching_keys_authenticate_both_sides() {
        let client = PskAuth::new("k", [1u8; 16]).unwrap().with_name("c");
        let server = PskAuth::new("k", [1u8; 16]).unwrap().with_name("s");
        let (result, _) = run(&client, &server, 1);
        assert_eq!(
            result,
            Ok(AuthStep::Done {
                identity: PeerIdentity::PreSharedKey {
                    key_id: "k".into(),
                    name: "c".into()
                },
                send: None
            })
        );
    }

    #[test]
    fn wrong_key_fails_at_the_client() {
        let client = PskAuth::new("k", [1u8; 16]).unwrap();
        let server = PskAuth::new("k", [2u8; 16]).unwrap();
        assert_eq!(run(&client, &server, 1).0, Err(AuthError::BadProof));
    }

    #[test]
    fn unknown_key_id_fails_like_a_wrong_key() {
        let client = PskAuth::new("other", [1u8; 16]).unwrap();
        let server = PskAuth::new("k", [1u8; 16]).unwrap();
        assert_eq!(run(&client, &server, 1).0, Err(AuthError::BadProof));
    }

    #[test]
    fn a_recorded_proof_fails_on_a_new_connection() {
        let auth = PskAuth::new("k", [1u8; 16]).unwrap();
        let (_, recorded) = run(&auth, &auth, 1);
        // A new server with a fresh nonce; the attacker replays both client messages.
        let mut rng = StdRng::seed_from_u64(2);
        let mut ctx = AuthContext::new(1, None, &mut rng);
        let mut server = auth.start(Role::Server, &mut ctx);
        assert!(matches!(
            server.step(Some(&recorded[0])),
            Ok(AuthStep::Send(_))
        ));
        assert_eq!(server.step(Some(&recorded[1])), Err(AuthError::BadProof));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(matches!(
            PskAuth::new("k", [0u8; 15]),
            Err(SessionError::InvalidConfig(_))
        ));
        assert!(format!("{:?}", PskKey::new([3u8; 16]).unwrap()).contains("16 bytes"));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let auth = PskAuth::new("k", [1u8; 16]).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let mut ctx = AuthContext::new(1, None, &mut rng);
        let mut server = auth.start(Role::Server, &mut ctx);
        assert!(matches!(
            server.step(Some(b"\xff\xff\xff")),
            Err(AuthError::Malformed(_))
        ));
        let mut client = auth.start(Role::Client, &mut ctx);
        assert!(matches!(
            client.step(Some(b"x")),
            Err(AuthError::Unexpected(_))
        ));
    }
}
