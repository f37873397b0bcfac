//! Attack-class tests: one or more `#[test]`s per class in `docs/threat-model.md` that applies to
//! verification (A1–A17, A20, A22–A24, and the header half of A18).
//!
//! Every attack token is built here, from keys generated in the test (`keyward_idp`) and, where
//! the attack needs it, hand-assembled segments. Each test runs the token through the public API
//! (`verify_with_keys` or `Verifier::verify`) and asserts the exact reason code.
//! The key-source classes (A18 fetching, A19) are tested in `tests/source/`; A21 (HMAC timing)
//! and A25 (gateway parsing) have no test yet: keyward never computes an HMAC, and the gateway
//! does not exist yet.

mod threats {
    pub(crate) mod support;

    mod claims;
    mod crypto;
    mod header;
    mod keys;
    mod structure;
}
