//! Signing keys and compact JWS minting for every algorithm keyward verifies.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents};
use serde_json::{Value, json};

/// Encodes bytes as unpadded base64url.
pub fn b64(bytes: &[u8]) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(bytes)
}

/// A signing algorithm the mock IdP can mint tokens with.
///
/// Deliberately its own type rather than `keyward::Algorithm`: the IdP does not depend on the
/// verifier, so tests that mint with it exercise keyward from the outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 SHA-512.
    RS512,
    /// RSASSA-PSS SHA-256.
    PS256,
    /// RSASSA-PSS SHA-384.
    PS384,
    /// RSASSA-PSS SHA-512.
    PS512,
    /// ECDSA P-256.
    ES256,
    /// ECDSA P-384.
    ES384,
    /// ECDSA P-521.
    ES512,
    /// Ed25519.
    EdDSA,
}

impl SigningAlg {
    /// Every algorithm.
    pub const ALL: [Self; 10] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::ES512,
        Self::EdDSA,
    ];

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::ES512 => "ES512",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Parses a JOSE name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Key generation or signing failed inside the crypto library.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MintError(String);

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private signing key with its `kid` and algorithm.
pub struct SigningKey {
    alg: SigningAlg,
    kid: String,
    pair: Pair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh key: RSA 2048 bits for RS*/PS*, the matching curve otherwise.
    pub fn generate(alg: SigningAlg, kid: impl Into<String>) -> Result<Self, MintError> {
        Self::generate_rsa_sized(alg, kid, KeySize::Rsa2048)
    }

    /// Generates a key, with an explicit RSA size (ignored for EC and Ed25519).
    pub fn generate_rsa_sized(
        alg: SigningAlg,
        kid: impl Into<String>,
        size: KeySize,
    ) -> Result<Self, MintError> {
        let err = |e: aws_lc_rs::error::Unspecified| MintError(format!("key generation failed: {e}"));
        let pair = match alg {
            SigningAlg::RS256
            | SigningAlg::RS384
            | SigningAlg::RS512
            | SigningAlg::PS256
            | SigningAlg::PS384
            | SigningAlg::PS512 => Pair::Rsa(RsaKeyPair::generate(size).map_err(err)?),
            SigningAlg::ES256 => {
                Pair::Ec(EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).map_err(err)?)
            }
            SigningAlg::ES384 => {
                Pair::Ec(EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).map_err(err)?)
            }
            SigningAlg::ES512 => {
                Pair::Ec(EcdsaKeyPair::generate(&signature::ECDSA_P521_SHA512_FIXED_SIGNING).map_err(err)?)
            }
            SigningAlg::EdDSA => Pair::Ed(Ed25519KeyPair::generate().map_err(err)?),
        };
        Ok(Self { alg, kid: kid.into(), pair })
    }

    /// The private key as PKCS#8 v1 DER, so `keyward idp --state` can keep its keys.
    pub fn to_pkcs8(&self) -> Result<Vec<u8>, MintError> {
        let err = |e: aws_lc_rs::error::Unspecified| MintError(format!("export failed: {e}"));
        Ok(match &self.pair {
            Pair::Rsa(pair) => {
                AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(pair).map_err(err)?.as_ref().to_vec()
            }
            Pair::Ec(pair) => pair.to_pkcs8v1().map_err(err)?.as_ref().to_vec(),
            Pair::Ed(pair) => pair.to_pkcs8v1().map_err(err)?.as_ref().to_vec(),
        })
    }

    /// Loads a key saved by [`SigningKey::to_pkcs8`]; the DER must match `alg`'s key type.
    pub fn from_pkcs8(alg: SigningAlg, kid: impl Into<String>, der: &[u8]) -> Result<Self, MintError> {
        let err = |e: aws_lc_rs::error::KeyRejected| MintError(format!("not a {alg} private key: {e}"));
        let pair = match alg {
            SigningAlg::RS256
            | SigningAlg::RS384
            | SigningAlg::RS512
            | SigningAlg::PS256
            | SigningAlg::PS384
            | SigningAlg::PS512 => Pair::Rsa(RsaKeyPair::from_pkcs8(der).map_err(err)?),
            SigningAlg::ES256 => Pair::Ec(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(err)?,
            ),
            SigningAlg::ES384 => Pair::Ec(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, der).map_err(err)?,
            ),
            SigningAlg::ES512 => Pair::Ec(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P521_SHA512_FIXED_SIGNING, der).map_err(err)?,
            ),
            SigningAlg::EdDSA => Pair::Ed(Ed25519KeyPair::from_pkcs8(der).map_err(err)?),
        };
        Ok(Self { alg, kid: kid.into(), pair })
    }

    /// The same key material under another `kid` is not possible to clone; this re-labels it.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = kid.into();
        self
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The public key as a JWK with `kid`, `alg` and `use: sig`.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = self.public_jwk_bare();
        if let Value::Object(map) = &mut jwk {
            map.insert("kid".into(), json!(self.kid));
            map.insert("alg".into(), json!(self.alg.as_str()));
            map.insert("use".into(), json!("sig"));
        }
        jwk
    }

    /// The public key members only (`kty`, `n`/`e` or `crv`/`x`/`y`).
    pub fn public_jwk_bare(&self) -> Value {
        match &self.pair {
            Pair::Rsa(pair) => {
                let components: RsaPublicKeyComponents<Vec<u8>> = pair.public_key().into();
                json!({"kty": "RSA", "n": b64(&components.n), "e": b64(&components.e)})
            }
            Pair::Ec(pair) => {
                let point = pair.public_key().as_ref();
                let len = (point.len() - 1) / 2;
                let crv = match self.alg {
                    SigningAlg::ES384 => "P-384",
                    SigningAlg::ES512 => "P-521",
                    _ => "P-256",
                };
                let x = point.get(1..1 + len).unwrap_or_default();
                let y = point.get(1 + len..).unwrap_or_default();
                json!({"kty": "EC", "crv": crv, "x": b64(x), "y": b64(y)})
            }
            Pair::Ed(pair) => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}),
        }
    }

    /// The public key as SubjectPublicKeyInfo DER (for PEM-based consumers).
    pub fn public_key_spki_der(&self) -> Result<Vec<u8>, MintError> {
        let err = |e: aws_lc_rs::error::Unspecified| MintError(format!("export failed: {e}"));
        Ok(match &self.pair {
            Pair::Rsa(pair) => pair.public_key().as_der().map_err(err)?.as_ref().to_vec(),
            Pair::Ec(pair) => pair.public_key().as_der().map_err(err)?.as_ref().to_vec(),
            Pair::Ed(pair) => pair.public_key().as_der().map_err(err)?.as_ref().to_vec(),
        })
    }

    /// Signs raw bytes with this key's algorithm, returning the JOSE signature bytes.
    pub fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, MintError> {
        let rng = SystemRandom::new();
        let err = |e: aws_lc_rs::error::Unspecified| MintError(format!("signing failed: {e}"));
        match &self.pair {
            Pair::Rsa(pair) => {
                let padding: &'static dyn signature::RsaEncoding = match self.alg {
                    SigningAlg::RS384 => &signature::RSA_PKCS1_SHA384,
                    SigningAlg::RS512 => &signature::RSA_PKCS1_SHA512,
                    SigningAlg::PS256 => &signature::RSA_PSS_SHA256,
                    SigningAlg::PS384 => &signature::RSA_PSS_SHA384,
                    SigningAlg::PS512 => &signature::RSA_PSS_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut sig).map_err(err)?;
                Ok(sig)
            }
            Pair::Ec(pair) => Ok(pair.sign(&rng, message).map_err(err)?.as_ref().to_vec()),
            Pair::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }

    /// Mints a compact JWS with header `{"alg", "kid", "typ": "JWT"}` over `claims`.
    pub fn sign_jwt(&self, claims: &Value) -> Result<String, MintError> {
        let header = json!({"alg": self.alg.as_str(), "kid": self.kid, "typ": "JWT"});
        self.sign_with_header(&header, claims)
    }

    /// Mints a compact JWS with an arbitrary header object (it is signed as given).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> Result<String, MintError> {
        self.sign_parts(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// Mints a compact JWS from raw header and payload bytes (for malformed-JSON tests).
    pub fn sign_parts(&self, header: &[u8], payload: &[u8]) -> Result<String, MintError> {
        let signing_input = format!("{}.{}", b64(header), b64(payload));
        let signature = self.sign_raw(signing_input.as_bytes())?;
        Ok(format!("{signing_input}.{}", b64(&signature)))
    }
}

/// A JWKS document holding the public halves of `keys`.
pub fn jwks<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> Value {
    json!({"keys": keys.into_iter().map(SigningKey::public_jwk).collect::<Vec<_>>()})
}
