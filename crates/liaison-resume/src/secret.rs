//! Resume secrets: agreed without crossing the wire (an ephemeral x25519 exchange and
//! HKDF-SHA256), and proven over a fresh server nonce with HMAC-SHA256 (docs/PROTOCOL.md §10).

use std::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::ResumeError;

/// Bytes of a resume secret (256 bits).
pub const SECRET_LEN: usize = 32;
/// Bytes of an x25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Bytes of a resume proof (an HMAC-SHA256 tag).
pub const PROOF_LEN: usize = 32;
/// Bytes of the server's resume nonce.
pub const NONCE_LEN: usize = 32;

/// HKDF `info` label of the derivation.
const DERIVE_LABEL: &[u8] = b"liaison resume v1";
/// HMAC label of the proof, so a proof is never mistaken for another MAC under the secret.
const PROOF_LABEL: &[u8] = b"liaison resume proof v1";

/// A session's resume secret: 256 bits both peers derived, never sent. Its `Debug` shows no
/// bytes.
#[derive(Clone, Serialize, Deserialize)]
pub struct ResumeSecret([u8; SECRET_LEN]);

impl ResumeSecret {
    /// A secret from its bytes (as a store keeps it).
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> Self {
        Self(bytes)
    }

    /// The secret's bytes (for a store).
    pub fn as_bytes(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }
}

impl PartialEq for ResumeSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for ResumeSecret {}

impl fmt::Debug for ResumeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResumeSecret(..)")
    }
}

/// One side's ephemeral x25519 key for the agreement of a resume secret.
pub struct KeyShare {
    secret: StaticSecret,
    public: [u8; PUBLIC_KEY_LEN],
}

impl KeyShare {
    /// A fresh key from 32 bytes of `rng`.
    pub fn generate(rng: &mut dyn rand::RngCore) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let secret = StaticSecret::from(seed);
        let public = PublicKey::from(&secret).to_bytes();
        Self { secret, public }
    }

    /// The public key to send to the peer.
    pub fn public(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.public
    }

    /// The resume secret of session `session_id`, agreed with the peer's public key:
    /// `HKDF-SHA256(ikm = x25519(own, peer), salt = session id, info = "liaison resume v1"
    /// ‖ context)`. Both sides must pass the same `context` (liaison passes the client's
    /// then the server's public key).
    ///
    /// # Errors
    ///
    /// [`ResumeError::KeyAgreement`] when the peer's key is a low-order point (the shared
    /// value would be all zeros, known to anyone).
    pub fn agree(
        &self,
        peer_public: &[u8; PUBLIC_KEY_LEN],
        session_id: &[u8; 16],
        context: &[u8],
    ) -> Result<ResumeSecret, ResumeError> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(*peer_public));
        if !shared.was_contributory() {
            return Err(ResumeError::KeyAgreement);
        }
        Ok(derive(shared.as_bytes(), session_id, context))
    }
}

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyShare")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// `HKDF-SHA256(ikm = shared, salt = session_id, info = "liaison resume v1" ‖ context)`.
pub fn derive(shared: &[u8; 32], session_id: &[u8; 16], context: &[u8]) -> ResumeSecret {
    let hkdf = Hkdf::<Sha256>::new(Some(session_id), shared);
    let mut out = [0u8; SECRET_LEN];
    // 32 bytes is far below HKDF-SHA256's limit of 255 × 32: expand cannot fail.
    let _ = hkdf.expand_multi_info(&[DERIVE_LABEL, context], &mut out);
    ResumeSecret(out)
}

/// The proof that a client holds `secret`, for the server's fresh `nonce`:
/// `HMAC-SHA256(secret, "liaison resume proof v1" ‖ session id ‖ nonce)`.
pub fn proof(
    secret: &ResumeSecret,
    nonce: &[u8; NONCE_LEN],
    session_id: &[u8; 16],
) -> [u8; PROOF_LEN] {
    mac(secret, nonce, session_id)
        .finalize()
        .into_bytes()
        .into()
}

/// Whether `candidate` is the [`proof`] for `nonce`, compared in constant time.
pub fn verify(
    secret: &ResumeSecret,
    nonce: &[u8; NONCE_LEN],
    session_id: &[u8; 16],
    candidate: &[u8],
) -> bool {
    mac(secret, nonce, session_id)
        .verify_slice(candidate)
        .is_ok()
}

fn mac(secret: &ResumeSecret, nonce: &[u8; NONCE_LEN], session_id: &[u8; 16]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&secret.0)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(PROOF_LABEL);
    mac.update(session_id);
    mac.update(nonce);
    mac
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn both_sides_agree_and_a_proof_verifies_only_for_its_nonce() {
        let mut rng = StdRng::seed_from_u64(1);
        let client = KeyShare::generate(&mut rng);
        let server = KeyShare::generate(&mut rng);
        let id = [9u8; 16];
        let ctx = [client.public(), server.public()].concat();
        let a = client.agree(&server.public(), &id, &ctx).expect("agree");
        let b = server.agree(&client.public(), &id, &ctx).expect("agree");
        assert_eq!(a, b);
        assert_eq!(format!("{a:?}"), "ResumeSecret(..)");
        // Another session id or context gives another secret.
        assert_ne!(
            a,
            client
                .agree(&server.public(), &[8u8; 16], &ctx)
                .expect("agree")
        );
        assert_ne!(
            a,
            client
                .agree(&server.public(), &id, b"other")
                .expect("agree")
        );

        let nonce = [5u8; NONCE_LEN];
        let p = proof(&a, &nonce, &id);
        assert!(verify(&b, &nonce, &id, &p));
        assert!(!verify(&b, &[6u8; NONCE_LEN], &id, &p), "another nonce");
        assert!(!verify(&b, &nonce, &[1u8; 16], &p), "another session");
        assert!(!verify(&b, &nonce, &id, &p[..31]), "truncated");
        let wrong = ResumeSecret::from_bytes([0u8; SECRET_LEN]);
        assert!(!verify(&wrong, &nonce, &id, &p), "another secret");
    }

    #[test]
    fn a_low_order_public_key_is_refused() {
        let mut rng = StdRng::seed_from_u64(2);
        let share = KeyShare::generate(&mut rng);
        assert!(matches!(
            share.agree(&[0u8; 32], &[0u8; 16], b""),
            Err(ResumeError::KeyAgreement)
        ));
    }
}
