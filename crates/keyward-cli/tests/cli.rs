//! Integration tests for the `keyward` binary: every test runs the real executable
//! (`CARGO_BIN_EXE_keyward`) with keys and tokens minted here, feeds stdin, and asserts stdout,
//! stderr and the exact exit code (0 valid, 1 rejected, 2 usage error, 3 no verdict
//! because the keys could not be obtained) against the contract in
//! README.md's CLI section and `keyward --help`.
//!
//! Remote-key tests run an in-process IdP (axum on 127.0.0.1:0, a tokio runtime on a background
//! thread) that counts its JWKS and discovery requests. Every child process is bounded: it is
//! killed and the test fails after 30 s.

mod cli {
    pub(crate) mod support;

    mod demo;
    mod doctor;
    mod doctor_edges;
    mod doctor_more;
    mod drill;
    mod edges;
    mod guarantees;
    mod idp;
    pub(crate) mod idp_support;
    mod inspect;
    mod key_files;
    mod newcomer;
    mod remote;
    mod robustness;
    mod stream;
    mod usage;
    mod verify_file;
}
