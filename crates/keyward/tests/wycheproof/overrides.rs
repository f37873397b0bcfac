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
    (JWK, 22, "key_not_for_signing", "point not on the curve"),
    (JWK, 23, "key_not_for_signing", "crv P-384 with 32-byte coordinates"),
    (JWK, 24, "key_not_for_signing", "kty RSA with EC members"),
    (JWK, 25, "algorithm_not_allowed", "AES-GCM key, HS256 token"),
    (JWK, 26, "algorithm_not_allowed", "AES-KW key, HS256 token"),
];

/// The observed reason-code counts per JWS file: a SNAPSHOT of what keyward does today, not a
/// specification. The spec is [`DEFECTS`], [`REASON_PINS`] and [`OVERRIDES`]; these counts only
/// make any change in why vectors are rejected visible (the primitive files need no table: every
/// rejection there must be `invalid_signature`). When a deliberate change moves a count, update it
/// here, with the per-vector failures of the other tables as evidence that it is intended.
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
            ("key_not_for_signing", 5),
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

/// Which vectors a [`Defect`] row applies to: a Wycheproof flag the vector carries, or (for the
/// JWS files, where most invalid vectors have no flag) its exact `comment`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Match {
    /// The vector's `flags` contain this name.
    Flag(&'static str),
    /// The vector's `comment` is exactly this.
    Comment(&'static str),
}

/// The reason code a named defect must get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// Found by the compact parser, before the header's `alg` is read: this code for every token.
    Parse(&'static str),
    /// Decided by the header's `alg` alone, before any key is looked at: this code.
    Header(&'static str),
    /// Found after the algorithm check (key selection or the signature itself): this code,
    /// except that a token whose header says `none` or `HS*` is refused first, at the algorithm
    /// check, with `algorithm_not_allowed` (keyward never verifies HMAC; README "Reason codes").
    AfterAlg(&'static str),
    /// No single natural code for the defect; the string says why. Every such vector must have
    /// its own [`REASON_PINS`] row instead (checked by the run).
    AnyRejection(&'static str),
}

impl Due {
    /// The code this row demands for a token whose header `alg` is `alg` (`None`: the header is
    /// not readable), or `None` when any rejection will do.
    pub(crate) fn code(self, alg: Option<&str>) -> Option<&'static str> {
        match self {
            Self::Parse(code) | Self::Header(code) => Some(code),
            Self::AfterAlg(_) if alg.is_some_and(|a| a == "none" || a.starts_with("HS")) => {
                Some("algorithm_not_allowed")
            }
            Self::AfterAlg(code) => Some(code),
            Self::AnyRejection(_) => None,
        }
    }
}

/// One row of the flag→reason table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Defect {
    pub(crate) matches: Match,
    pub(crate) due: Due,
}

const fn flag(name: &'static str, due: Due) -> Defect {
    Defect { matches: Match::Flag(name), due }
}

const fn comment(text: &'static str, due: Due) -> Defect {
    Defect { matches: Match::Comment(text), due }
}

const MALFORMED: Due = Due::Parse("malformed");
const BAD_SIGNATURE: Due = Due::AfterAlg("invalid_signature");

/// The flag→reason table for the `invalid` vectors of the three JWS/JWK files: where a vector's
/// flag (or, lacking one, its comment) names the defect, the reason code keyward must give.
/// The first matching row wins, flags before comments. Every `invalid` JWS vector without an
/// [`OVERRIDES`] row must match a row (a new, unexplained vector fails the run), and a row
/// that matches no vector fails it too. The primitive files (RSA, PSS, ECDSA, Ed25519) need no
/// table: their keys are all valid and only the signature primitive runs, so every flag there
/// (`ModifiedPadding`, `ArithmeticError`, `SignatureMalleability`, ...) must be
/// `invalid_signature`, which `run_primitive_group` asserts.
pub(crate) const DEFECTS: &[Defect] = &[
    // Flags.
    flag("ModifiedPadding", BAD_SIGNATURE),
    flag("ModifiedSignature", BAD_SIGNATURE),
    flag("JsonSerialization", MALFORMED),
    // `none` is algorithm_not_allowed, but a case variant such as `NONE` (tc 342) is an unknown
    // name, unsupported_algorithm: two codes for one flag, each pinned in REASON_PINS.
    flag("AlgIsNone", Due::AnyRejection("`none` vs. a case variant of it; pinned per vector")),
    // A signature of another algorithm: with the key's own alg in the header it fails the
    // signature check, with another alg the JWK `alg` binding refuses it first. Pinned per vector.
    flag(
        "WrongPrimitive",
        Due::AnyRejection("invalid_signature or key_algorithm_mismatch by header alg; pinned per vector"),
    ),
    // A duplicated kid or a set mixing oct and EC keys is not refused by keyward (every key under
    // a duplicated kid is tried, as during an IdP's rotation overlap; oct keys are set aside). In
    // these vectors the token is HS256, which is what refuses them.
    flag("DuplicateKid", Due::Header("algorithm_not_allowed")),
    flag("MixedKeySet", Due::Header("algorithm_not_allowed")),
    // json_web_crypto's version of the mixed-set case has only the flag `JsonWebKeyset`, which
    // names no defect; its comment is the generic "rejectsValid" (used for nothing else).
    comment("rejectsValid", Due::Header("algorithm_not_allowed")),
    // Damaged compact serialization (json_web_signature, json_web_crypto).
    comment("rejectsEmptyString", MALFORMED),
    comment("rejectsExtraComponent", MALFORMED),
    comment("rejectsExtraEmptyComponent", MALFORMED),
    comment("rejectsMissingHeader", MALFORMED),
    comment("rejectsMissingHeaderAndSeparator", MALFORMED),
    comment("rejectsMissingHeaderAndSignature", MALFORMED),
    comment("rejectsMissingHeaderSignatureAndSeparator", MALFORMED),
    comment("rejectsMissingHeaderSignatureAndSeparators", MALFORMED),
    comment("rejectsMissingPayloadAndSeparator", MALFORMED),
    comment("rejectsMissingSignatureAndSeparator", MALFORMED),
    // Strict base64url (group `base64`, tcs 360-375 except the #236 pair, which are overridden).
    comment("rejectsInvalidCharacters", MALFORMED),
    comment("rejects0ReplacedbyInvalidCharacter", MALFORMED),
    comment("rejectsInvalidCharacterInsertedInMac", MALFORMED),
    comment("rejectsSpacesInMac", MALFORMED),
    comment("spacesInHeader", MALFORMED),
    comment("spacesInPayload", MALFORMED),
    comment("invalidCharactersInHeader", MALFORMED),
    comment("invalidCharactersInPayload", MALFORMED),
    comment("InvalidCharacterInPayload", MALFORMED),
    comment("MacOfIncorrectlyEncodedMessage", MALFORMED),
    comment("ModifiedUnusedBitsInPayload", MALFORMED),
    // Three well-formed segments whose signature no longer matches. An empty signature segment
    // parses (it is a signature of the wrong length), so it fails at the signature check too.
    comment("rejectsMissingSignature", BAD_SIGNATURE),
    comment("rejectsMissingPayload", BAD_SIGNATURE),
    comment("rejectsModifiedPayload", BAD_SIGNATURE),
    comment("rejectsModifiedSignature", BAD_SIGNATURE),
    // The header's only damage is its kid ("kid-…" became "Xid-…").
    comment("rejectsModifiedHeader", Due::AfterAlg("unknown_kid")),
    // The attacker's key in the header `jwk` is never used; the group key does not verify it.
    comment("rejectsAttackerProvidedEmbeddedJwk", BAD_SIGNATURE),
    // Header-only refusals: `none`, and HS256 signed with bytes of the EC public key.
    comment("rejectsNoneAlgorithmAndMissingSignature", Due::Header("algorithm_not_allowed")),
    comment(
        "rejectsSymmetryConfusionAttacks_aesKeyFromEcVerificationKeyBytes",
        Due::Header("algorithm_not_allowed"),
    ),
    // ES256 special cases (tcs 378-401): r or s of 0, 1, n-1, n, overlong or overflowing. The
    // raw r||s must be exactly 64 bytes and each value in [1, n-1]; all are signature failures.
    comment("rIsZero_sIsZero", BAD_SIGNATURE),
    comment("rIsZero_sIsOne", BAD_SIGNATURE),
    comment("rIsZero_sIsNminus1", BAD_SIGNATURE),
    comment("rIsZero_sIsN", BAD_SIGNATURE),
    comment("rIsOne_sIsZero", BAD_SIGNATURE),
    comment("rIsOne_sIsOne", BAD_SIGNATURE),
    comment("rIsOne_sIsNminus1", BAD_SIGNATURE),
    comment("rIsOne_sIsN", BAD_SIGNATURE),
    comment("rIsNminus1_sIsZero", BAD_SIGNATURE),
    comment("rIsNminus1_sIsOne", BAD_SIGNATURE),
    comment("rIsNminus1_sIsNminus1", BAD_SIGNATURE),
    comment("rIsNminus1_sIsN", BAD_SIGNATURE),
    comment("rIsN_sIsZero", BAD_SIGNATURE),
    comment("rIsN_sIsOne", BAD_SIGNATURE),
    comment("rIsN_sIsNminus1", BAD_SIGNATURE),
    comment("rIsN_sIsN", BAD_SIGNATURE),
    comment("RisTooBig", BAD_SIGNATURE),
    comment("SisTooBig", BAD_SIGNATURE),
    comment("SignatureTooLong", BAD_SIGNATURE),
    comment("TrailingZeros", BAD_SIGNATURE),
    comment("BufferOverflow", BAD_SIGNATURE),
    comment("IntegerOverflow", BAD_SIGNATURE),
    // Keys that must not be used for signatures (use enc, key_ops without verify).
    comment("rejectWrongUse", Due::AfterAlg("key_not_for_signing")),
    comment("rejectWrongKeyOps", Due::AfterAlg("key_not_for_signing")),
    comment("rejectsWrongUse", Due::AfterAlg("key_not_for_signing")),
    // Keys that are too weak to trust (1024-bit RSA, e = 1). The ROCA vectors are weak_key too,
    // through their OVERRIDES rows (README 7).
    comment("rejects1024bitRsaKey", Due::AfterAlg("weak_key")),
    comment("rejectsPublicExponent1", Due::AfterAlg("weak_key")),
    // JWK alg ES521 / ES224 on a P-256 key: not JOSE names, so the key is set aside as
    // unsupported rather than mismatched.
    comment("mismatchedAlgAndCurve", Due::AfterAlg("unsupported_algorithm")),
    // One JWK damaged in four ways (use enc; point off the curve; wrong curve length; wrong kty):
    // key_not_for_signing for the first, malformed for the rest. Pinned per vector (JWK 21-24).
    comment("rejectsModifiedKey", Due::AnyRejection("four different key defects; pinned per vector")),
    // HMAC and AES key defects (empty, short, AES key for HS256): keyward never verifies HMAC, so
    // the HS256 header is refused before the key is looked at.
    comment("empty_key", Due::Header("algorithm_not_allowed")),
    comment("key_too_short", Due::Header("algorithm_not_allowed")),
    comment("rejectsAesKey", Due::Header("algorithm_not_allowed")),
];

/// JWE tests in `json_web_crypto_test.json` (field `jwe`): skipped, keyward verifies JWS only.
pub(crate) const JWE_TESTS: usize = 34;
