//! The JWS algorithms keyward verifies, and how each binds to a key family.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::signature::{self, VerificationAlgorithm};

/// A JWS signature algorithm keyward verifies (all asymmetric; `none` and HMAC do not exist here).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, 32-byte salt.
    PS256,
    /// RSASSA-PSS with SHA-384, MGF1-SHA-384, 48-byte salt.
    PS384,
    /// RSASSA-PSS with SHA-512, MGF1-SHA-512, 64-byte salt.
    PS512,
    /// ECDSA on P-256 with SHA-256, fixed-width r‖s signature.
    ES256,
    /// ECDSA on P-384 with SHA-384, fixed-width r‖s signature.
    ES384,
    /// ECDSA on P-521 with SHA-512, fixed-width r‖s signature.
    ES512,
    /// EdDSA (RFC 8037); keyward accepts it with Ed25519 keys only.
    EdDSA,
    /// The fully specified Ed25519 identifier (RFC 9864).
    Ed25519,
}

/// The kind of public key an algorithm needs.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyFamily {
    /// `kty: RSA`.
    Rsa,
    /// `kty: EC`, `crv: P-256`.
    P256,
    /// `kty: EC`, `crv: P-384`.
    P384,
    /// `kty: EC`, `crv: P-521`.
    P521,
    /// `kty: OKP`, `crv: Ed25519`.
    Ed25519,
}

impl KeyFamily {
    /// The algorithms a key of this family may verify when the JWK carries no `alg`.
    pub fn algorithms(self) -> &'static [Algorithm] {
        use Algorithm::*;
        match self {
            Self::Rsa => &[RS256, RS384, RS512, PS256, PS384, PS512],
            Self::P256 => &[ES256],
            Self::P384 => &[ES384],
            Self::P521 => &[ES512],
            Self::Ed25519 => &[EdDSA, Ed25519],
        }
    }

    /// A short human name, e.g. `"RSA"` or `"EC P-256"`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Rsa => "RSA",
            Self::P256 => "EC P-256",
            Self::P384 => "EC P-384",
            Self::P521 => "EC P-521",
            Self::Ed25519 => "OKP Ed25519",
        }
    }
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Self; 11] = [
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
        Self::Ed25519,
    ];

    /// The JOSE name, e.g. `"RS256"`.
    pub const fn as_str(self) -> &'static str {
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
            Self::Ed25519 => "Ed25519",
        }
    }

    /// The key family this algorithm requires.
    pub const fn family(self) -> KeyFamily {
        match self {
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                KeyFamily::Rsa
            }
            Self::ES256 => KeyFamily::P256,
            Self::ES384 => KeyFamily::P384,
            Self::ES512 => KeyFamily::P521,
            Self::EdDSA | Self::Ed25519 => KeyFamily::Ed25519,
        }
    }

    /// True when `self` and `other` are the same operation under two names (`EdDSA`/`Ed25519`).
    pub(crate) fn same_operation(self, other: Self) -> bool {
        self == other || (self.family() == KeyFamily::Ed25519 && other.family() == KeyFamily::Ed25519)
    }

    pub(crate) fn aws_lc(self) -> &'static dyn VerificationAlgorithm {
        if let Some(rsa) = self.rsa_params() {
            return rsa;
        }
        match self {
            Self::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Self::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            Self::ES512 => &signature::ECDSA_P521_SHA512_FIXED,
            _ => &signature::ED25519,
        }
    }

    pub(crate) fn rsa_params(self) -> Option<&'static signature::RsaParameters> {
        Some(match self {
            Self::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Self::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Self::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Self::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Self::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Self::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a header or JWK `alg` string names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AlgName {
    /// A signature algorithm keyward verifies.
    Supported(Algorithm),
    /// `none` or an HMAC algorithm: known, and never accepted with public keys.
    Forbidden,
    /// A JWE key-management or content-encryption algorithm.
    Encryption,
    /// Anything else, including case variants such as `"None"` or `"rs256"`.
    Unknown,
}

impl AlgName {
    pub(crate) fn classify(name: &str) -> Self {
        if let Ok(alg) = name.parse() {
            return Self::Supported(alg);
        }
        match name {
            "none" | "HS256" | "HS384" | "HS512" => Self::Forbidden,
            "RSA1_5" | "RSA-OAEP" | "RSA-OAEP-256" | "RSA-OAEP-384" | "RSA-OAEP-512" | "A128KW"
            | "A192KW" | "A256KW" | "dir" | "ECDH-ES" | "ECDH-ES+A128KW" | "ECDH-ES+A192KW"
            | "ECDH-ES+A256KW" | "A128GCMKW" | "A192GCMKW" | "A256GCMKW" | "PBES2-HS256+A128KW"
            | "PBES2-HS384+A192KW" | "PBES2-HS512+A256KW" | "A128GCM" | "A192GCM" | "A256GCM"
            | "A128CBC-HS256" | "A192CBC-HS384" | "A256CBC-HS512" => Self::Encryption,
            _ => Self::Unknown,
        }
    }
}

/// The error from parsing an algorithm name keyward does not verify. Its message is the one
/// every configuration surface shows (CLI flags, the gateway's file): `none` and HMAC are
/// refused as a rule, anything else is listed against the supported names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", refusal(.0))]
pub struct UnknownAlgorithm(pub String);

fn refusal(name: &str) -> String {
    match name {
        "none" | "HS256" | "HS384" | "HS512" => {
            format!("{name} is never accepted: keyward verifies only public-key signatures")
        }
        _ => {
            let supported: Vec<&str> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
            format!("unknown algorithm {name:?}; supported: {}", supported.join(", "))
        }
    }
}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|a| a.as_str() == s).ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}
