//! Field encryption inside jsonb: `json_fields::nesting_depth`, `parse_document`,
//! `decode_ciphertext`, `is_ciphertext`, `visit_matches`, `visit_ciphertexts`, `path_aad`.
//!
//! Checks: `parse_document` refuses exactly the documents deeper than `MAX_DEPTH` (by
//! `nesting_depth`) and never hits serde_json's own recursion limit; a parsed document
//! re-serializes to one of the same value and depth; a ciphertext string is canonical base64
//! (re-encoding gives the same string); the visitors terminate on documents that decrypt to
//! more ciphertext strings (emulated: the enc_bytea body is taken as the decrypted JSON).

use encml_core::aead::Parts;
use encml_core::json_fields::{
    self, decode_ciphertext, encode_ciphertext, nesting_depth, parse_document, DocumentError, Elem,
    MAX_DEPTH, PREFIX,
};
use serde_json::Value;

pub fn init() {}

const PATTERNS: &[&[&str]] = &[
    &["*"],
    &["*", "*"],
    &["a"],
    &["\\*"],
    &["0"],
    &["-1"],
    &["*", "0", "*"],
    &["9223372036854775807"],
    &["-9223372036854775808"],
];

pub fn run(data: &[u8]) {
    let depth = nesting_depth(data);
    match parse_document(data) {
        Ok(mut v) => {
            assert!(depth <= MAX_DEPTH);
            let text = serde_json::to_vec(&v).expect("a Value serializes");
            assert_eq!(
                nesting_depth(&text),
                depth,
                "depth of the re-serialized document"
            );
            assert_eq!(
                parse_document(&text).as_ref(),
                Ok(&v),
                "document round trips"
            );
            visit(&mut v);
        }
        Err(DocumentError::TooDeep(d)) => {
            assert_eq!(d, depth);
            assert!(d > MAX_DEPTH);
        }
        Err(DocumentError::Invalid(msg)) => {
            assert!(
                !msg.contains("recursion limit"),
                "depth {depth} passed the check but serde_json refused it: {msg}"
            );
        }
    }

    let s = String::from_utf8_lossy(data);
    strings(&s);
    // The input as a ciphertext body: base64 of it behind the prefix.
    let enc = encode_ciphertext(data);
    assert_eq!(decode_ciphertext(&enc), Some(Ok(data.to_vec())));
}

fn strings(s: &str) {
    match decode_ciphertext(s) {
        None => assert!(!s.starts_with(PREFIX)),
        Some(Ok(bytes)) => {
            assert_eq!(
                encode_ciphertext(&bytes),
                s,
                "ciphertext string is canonical"
            );
            let v = Value::String(s.to_string());
            assert!(json_fields::has_prefix(&v));
            assert_eq!(json_fields::is_ciphertext(&v), Parts::parse(&bytes).is_ok());
        }
        Some(Err(())) => {
            assert!(!json_fields::is_ciphertext(&Value::String(s.to_string())));
        }
    }
}

fn visit(doc: &mut Value) {
    for pattern in PATTERNS {
        let pattern: Vec<String> = pattern.iter().map(|s| s.to_string()).collect();
        let mut n = 0usize;
        let r: Result<(), ()> = json_fields::visit_matches(doc, &pattern, &mut |path, node| {
            assert_eq!(path.len(), pattern.len());
            let _ = json_fields::display_path(path);
            let _ = json_fields::path_aad(path, b"aad");
            let _ = node;
            n += 1;
            Ok(())
        });
        assert!(r.is_ok());
    }
    // decrypt_jsonb's walk: every ciphertext string is replaced by its "plaintext" document.
    let mut visits = 0usize;
    let r: Result<(), String> = json_fields::visit_ciphertexts(doc, &mut |path, node| {
        visits += 1;
        let _ = json_fields::path_aad(path, &[]);
        let Value::String(s) = node else {
            panic!("visited a non-string");
        };
        let bytes = match decode_ciphertext(s) {
            Some(Ok(b)) => b,
            Some(Err(())) => return Err("bad base64".into()),
            None => panic!("visited a string without the prefix"),
        };
        let body = Parts::parse(&bytes)
            .map_err(|e| e.to_string())?
            .body
            .to_vec();
        match parse_document(&body) {
            Ok(inner) => *node = inner,
            Err(e) => return Err(format!("{e:?}")),
        }
        Ok(())
    });
    let _ = r;
    let _ = visits;
    // Paths render and bind the same way for any key.
    let path = [Elem::Key(String::new()), Elem::Index(usize::MAX)];
    let _ = json_fields::path_aad(&path, b"");
}
