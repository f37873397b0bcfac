//! Compact JWS parsing: `UnverifiedToken::parse` and `danger::decode_unverified`.
//!
//! Beyond "never panics", checks that the two entry points agree, and that every accepted
//! segment is the canonical base64url encoding of what was decoded from it.
#![no_main]

use keyward::danger::decode_unverified;
use keyward::internal::base64url;
use keyward::internal::{DEFAULT_MAX_TOKEN_LEN, UnverifiedToken};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let parsed = UnverifiedToken::parse(token, DEFAULT_MAX_TOKEN_LEN);
    let decoded = decode_unverified(token, DEFAULT_MAX_TOKEN_LEN);
    // A small bound must reject before anything else.
    if token.len() > 8 {
        let small = UnverifiedToken::parse(token, 8).expect_err("over the bound");
        assert_eq!(small.reason(), keyward::Reason::TokenTooLarge);
    }
    match &parsed {
        Ok(p) => {
            let d = decoded.as_ref().expect("parse accepted, decode_unverified must too");
            assert!(d.header_problem.is_none(), "parse accepted but decode_unverified reports a problem");
            let mut segments = token.split('.');
            let (h, pl, s) = (segments.next().unwrap(), segments.next().unwrap(), segments.next().unwrap());
            assert!(segments.next().is_none());
            assert_eq!(base64url::encode(p.header_json()), h);
            assert_eq!(base64url::encode(p.payload()), pl);
            assert_eq!(base64url::encode(p.signature()), s);
            assert_eq!(p.signing_input().len(), h.len() + 1 + pl.len());
            assert!(token.starts_with(p.signing_input()));
            assert!(!p.signature().is_empty());
            assert_eq!(d.signature_len, p.signature().len());
        }
        Err(e) => {
            if let Ok(d) = &decoded {
                let problem =
                    d.header_problem.as_ref().expect("parse rejected: decode_unverified must say why");
                assert_eq!(problem.reason(), e.reason());
            }
        }
    }
});
