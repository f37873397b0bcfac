//! The Wycheproof override and pin tables (README "Cases to override and policy decisions").
//!
//! Every vector runs. A vector listed in [`OVERRIDES`] is judged by the table instead of its
//! Wycheproof label; every other vector is judged by its label (`valid` must be accepted,
//! `invalid` rejected). An `acceptable` vector must appear in [`OVERRIDES`], so its outcome is
//! pinned. [`REASON_PINS`] additionally pin the exact reason code of security-relevant
//! rejections, so that "rejected for the right reason" is checked, not just "rejected".
//! A table entry that matches no vector fails the run (no stale entries).

/// What keyward must do with a vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Verification succeeds.
    Accept,
    /// Verification fails with exactly this reason code (or `jwks_error` when the key document
    /// itself is refused).
    Reject(&'static str),
}

/// Why an entry exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Upstream labelled the vector wrongly (the data is broken).
    DataBug,
    /// We disagree with upstream's label on the merits.
    Disagree,
    /// keyward's policy differs from the generic JOSE expectation (unsupported algorithm,
    /// JWK `alg` binding).
    Policy,
    /// The label allows either outcome (`acceptable`), or the README asks us to record what
    /// keyward does; the observed outcome is pinned.
    Pin,
}

/// One row of the override table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Override {
    pub(crate) file: &'static str,
    pub(crate) tc_id: u64,
    pub(crate) expect: Expect,
    pub(crate) kind: Kind,
    pub(crate) reason: &'static str,
}

const JWS: &str = "json_web_signature_test.json";
const JWK: &str = "json_web_key_test.json";
const JWC: &str = "json_web_crypto_test.json";
const RSA_2048_256: &str = "rsa_signature_2048_sha256_test.json";
const RSA_3072_256: &str = "rsa_signature_3072_sha256_test.json";
const RSA_3072_384: &str = "rsa_signature_3072_sha384_test.json";
const RSA_2048_512: &str = "rsa_signature_2048_sha512_test.json";

const fn row(file: &'static str, tc_id: u64, expect: Expect, kind: Kind, reason: &'static str) -> Override {
    Override { file, tc_id, expect, kind, reason }
}

const NOT_ALLOWED: Expect = Expect::Reject("algorithm_not_allowed");

const HS_UNSUPPORTED: &str = "README 4: HMAC is never accepted by keyward (public-key algorithms only); \
     a valid HS256/384/512 MAC is rejected at the header with algorithm_not_allowed";

/// The override table: (file, tcId, expected, reason), one row per README item.
pub(crate) const OVERRIDES: &[Override] = &[
    // README 1: upstream data bug (C2SP/wycheproof#236). The padding characters were lost in
    // conversion, so 367/370 are byte-identical to the valid 357 (asserted by
    // `base64_group_fails_in_the_parser`). They would be valid; as HS256 (README 4) all three
    // are rejected with algorithm_not_allowed.
    row(JWS, 367, NOT_ALLOWED, Kind::DataBug, "#236: identical to valid 357; HS256 so algorithm_not_allowed"),
    row(JWS, 370, NOT_ALLOWED, Kind::DataBug, "#236: identical to valid 357; HS256 so algorithm_not_allowed"),
    // README 2: a `?` inside a segment is outside the base64url alphabet (RFC 7515 §2, §5.2).
    // keyward's strict decoder refuses the segment before the header is read.
    row(JWS, 372, Expect::Reject("malformed"), Kind::Disagree, "'?' in header segment: not base64url"),
    row(JWS, 373, Expect::Reject("malformed"), Kind::Disagree, "'?' in payload segment: not base64url"),
    // README 3: RFC 7520 Figure 20 is a correct PS384 signature, but the JWK says "alg":"PS256".
    // keyward binds the JWK alg to the header alg (RFC 8725 §3.1), as in WrongPrimitive 331-340.
    row(JWS, 346, Expect::Reject("key_algorithm_mismatch"), Kind::Policy, "JWK alg PS256, token alg PS384"),
    row(JWS, 350, Expect::Reject("key_algorithm_mismatch"), Kind::Policy, "JWK alg PS256, token alg PS384"),
    // README 4: ES512 vectors whose JWK says the non-standard "alg":"ES521". The unknown alg sets
    // the key aside as unsupported, so the token's kid names only a set-aside key.
    row(
        JWS,
        347,
        Expect::Reject("unsupported_algorithm"),
        Kind::Policy,
        "JWK alg \"ES521\" is not a JOSE name",
    ),
    row(
        JWS,
        351,
        Expect::Reject("unsupported_algorithm"),
        Kind::Policy,
        "JWK alg \"ES521\" is not a JOSE name",
    ),
    // README 4: every HS* vector labelled valid (the invalid ones are rejected anyway; the
    // `base64` group is also run through the parser so those do not pass vacuously).
    row(JWS, 1, NOT_ALLOWED, Kind::Policy, HS_UNSUPPORTED),
    row(JWS, 348, NOT_ALLOWED, Kind::Policy, HS_UNSUPPORTED),
    row(JWS, 352, NOT_ALLOWED, Kind::Policy, HS_UNSUPPORTED),
    row(JWS, 357, NOT_ALLOWED, Kind::Policy, HS_UNSUPPORTED),
    row(JWS, 358, NOT_ALLOWED, Kind::Policy, HS_UNSUPPORTED),
    row(JWS, 359, NOT_ALLOWED, Kind::Policy, HS_UNSUPPORTED),
    row(JWS, 376, NOT_ALLOWED, Kind::Policy, HS_UNSUPPORTED),
    row(JWS, 377, NOT_ALLOWED, Kind::Policy, HS_UNSUPPORTED),
    row(JWK, 2, NOT_ALLOWED, Kind::Policy, HS_UNSUPPORTED),
    row(JWK, 13, NOT_ALLOWED, Kind::Policy, HS_UNSUPPORTED),
    row(JWK, 14, NOT_ALLOWED, Kind::Policy, HS_UNSUPPORTED),
    row(JWK, 15, NOT_ALLOWED, Kind::Policy, HS_UNSUPPORTED),
    row(JWC, 1, NOT_ALLOWED, Kind::Policy, HS_UNSUPPORTED),
    row(JWC, 48, NOT_ALLOWED, Kind::Policy, HS_UNSUPPORTED),
    // README 5: SmallPublicKey (e = 3) vectors are valid. keyward accepts any odd e >= 3, so they
    // verify; pinned so that a future "e must be 65537" rule shows up here.
    row(RSA_2048_256, 258, Expect::Accept, Kind::Pin, "e = 3 accepted: keyward allows odd e >= 3"),
    row(RSA_2048_256, 259, Expect::Accept, Kind::Pin, "e = 3 accepted: keyward allows odd e >= 3"),
    row(RSA_3072_256, 259, Expect::Accept, Kind::Pin, "e = 3 accepted: keyward allows odd e >= 3"),
    row(RSA_2048_512, 259, Expect::Accept, Kind::Pin, "e = 3 accepted: keyward allows odd e >= 3"),
    // README 6: `acceptable` MissingNull (DigestInfo without the NULL parameters). aws-lc-rs
    // compares the encoded message byte for byte, so these are rejected; pinned.
    row(RSA_2048_256, 8, Expect::Reject("invalid_signature"), Kind::Pin, "MissingNull: rejected (exact DER)"),
    row(RSA_3072_256, 8, Expect::Reject("invalid_signature"), Kind::Pin, "MissingNull: rejected (exact DER)"),
    row(RSA_3072_384, 8, Expect::Reject("invalid_signature"), Kind::Pin, "MissingNull: rejected (exact DER)"),
    row(RSA_2048_512, 8, Expect::Reject("invalid_signature"), Kind::Pin, "MissingNull: rejected (exact DER)"),
    // README 7: ROCA. keyward implements the fingerprint test, so the key is set aside as weak
    // and the token, whose kid names only that key, is rejected with weak_key.
    row(JWK, 7, Expect::Reject("weak_key"), Kind::Pin, "ROCA fingerprint: key set aside as weak"),
    row(JWC, 46, Expect::Reject("weak_key"), Kind::Pin, "ROCA fingerprint: key set aside as weak"),
    // README 8 (Ed25519 mode) needs no row: all 151 vectors pass with their labels under
    // aws-lc-rs (see `ED25519_MODE` and `ed25519_mode_is_pinned`).
];

/// How keyward verifies Ed25519 (README 8), checked by `ed25519_mode_is_pinned`: all 151
/// `ed25519_test.json` vectors pass with their labels in this mode, with no override.
pub(crate) const ED25519_MODE: &str = "cofactorless (aws-lc-rs ED25519: [S]B = R + [k]A compared as \
     encodings, S >= L rejected) plus keyward's import check that sets small-order public keys aside \
     as weak; like ed25519-dalek `verify` with a weak-key check, not `verify_strict` (a small-order R \
     is not refused by itself)";

/// Exact reason codes for rejections that matter for security, beyond "was rejected".
/// (file, tcId, reason code, why)
pub(crate) const REASON_PINS: &[(&str, u64, &str, &str)] = &[
    (JWS, 16, "algorithm_not_allowed", "alg none with a kid and no signature"),
    (JWS, 17, "malformed", "JSON serialization"),
    (JWS, 31, "algorithm_not_allowed", "HS256 with a MAC keyed by the EC public key"),
    (JWS, 32, "invalid_signature", "attacker key embedded as header jwk is never used"),
    // WrongPrimitive against the PS512 key: with the header alg PS512 the foreign signature fails
    // the PSS check; with the header naming the other algorithm the JWK alg binding refuses it
    // before any crypto.
    (JWS, 331, "invalid_signature", "RS256 signature, header PS512"),
    (JWS, 332, "key_algorithm_mismatch", "header RS256, JWK alg PS512"),
    (JWS, 333, "invalid_signature", "RS384 signature, header PS512"),
    (JWS, 334, "key_algorithm_mismatch", "header RS384, JWK alg PS512"),
    (JWS, 335, "invalid_signature", "RS512 signature, header PS512"),
    (JWS, 336, "key_algorithm_mismatch", "header RS512, JWK alg PS512"),
    (JWS, 337, "invalid_signature", "PS256 signature, header PS512"),
    (JWS, 338, "key_algorithm_mismatch", "header PS256, JWK alg PS512"),
    (JWS, 339, "invalid_signature", "PS384 signature, header PS512"),
    (JWS, 340, "key_algorithm_mismatch", "header PS384, JWK alg PS512"),
    (JWS, 341, "algorithm_not_allowed", "alg none"),
    (JWS, 342, "unsupported_algorithm", "alg NONE is not a known name"),
    (JWS, 343, "algorithm_not_allowed", "alg none, kid none"),
    (JWS, 344, "algorithm_not_allowed", "alg none, kid of a real key"),
    (JWS, 353, "key_not_for_signing", "RSA key with use enc"),
    (JWS, 354, "key_not_for_signing", "EC key with use enc"),
    (JWS, 355, "key_not_for_signing", "RSA key with key_ops [encrypt]"),
    (JWS, 356, "key_not_for_signing", "EC key with key_ops [encrypt]"),
    (JWS, 386, "invalid_signature", "ES256 r = s = 0 (psychic signature)"),
    (JWK, 1, "algorithm_not_allowed", "mixed oct + EC set, HS256 token"),
    (JWK, 6, "key_not_for_signing", "RSA1_5/enc key for an RS256 token"),
    (JWK, 8, "weak_key", "1024-bit RSA key"),
    (JWK, 9, "weak_key", "public exponent 1"),
    (JWK, 19, "unsupported_algorithm", "JWK alg ES521 on P-256"),
    (JWK, 20, "unsupported_algorithm", "JWK alg ES224 on P-256"),
    (JWK, 21, "key_not_for_signing", "use enc"),
    (JWK, 22, "malformed", "point not on the curve"),
    (JWK, 23, "malformed", "crv P-384 with 32-byte coordinates"),
    (JWK, 24, "malformed", "kty RSA with EC members"),
    (JWK, 25, "algorithm_not_allowed", "AES-GCM key, HS256 token"),
    (JWK, 26, "algorithm_not_allowed", "AES-KW key, HS256 token"),
];

/// The observed reason-code counts per JWS file, pinned so that any change in why vectors are
/// rejected is noticed (the primitive files need no table: every rejection there must be
/// `invalid_signature`). Update deliberately, with the per-vector failures as evidence.
pub(crate) const REASON_COUNTS: &[(&str, &[(&str, usize)])] = &[
    (
        JWS,
        &[
            ("algorithm_not_allowed", 20),
            ("invalid_signature", 295),
            ("key_algorithm_mismatch", 7),
            ("key_not_for_signing", 4),
            ("malformed", 38),
            ("unknown_kid", 2),
            ("unsupported_algorithm", 3),
        ],
    ),
    (
        JWK,
        &[
            ("algorithm_not_allowed", 15),
            ("key_not_for_signing", 2),
            ("malformed", 3),
            ("unsupported_algorithm", 2),
            ("weak_key", 3),
        ],
    ),
    (
        JWC,
        &[
            ("algorithm_not_allowed", 11),
            ("invalid_signature", 9),
            ("malformed", 24),
            ("unknown_kid", 2),
            ("weak_key", 1),
        ],
    ),
];

/// JWE tests in `json_web_crypto_test.json` (field `jwe`): skipped, keyward verifies JWS only.
pub(crate) const JWE_TESTS: usize = 34;
