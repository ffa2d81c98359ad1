//! Field-level encryption inside JSON documents: the values at chosen paths become ciphertext
//! strings, everything else stays plain (so metadata can be queried and indexed).
//!
//! A path is a list of elements as in Postgres's `#>` operator: on an object an element is a key;
//! on an array it is an index (negative counts from the end). `*` matches every key of an object
//! or every element of an array; `\*` is a key named `*`. Paths that match nothing are skipped.
//!
//! An encrypted value is the string `encml:v1:` followed by the standard base64 (RFC 4648, with
//! padding) of an enc_bytea value whose plaintext is the JSON text of the original value. Its AAD
//! binds the concrete path where it was encrypted (and an optional caller AAD such as a row id),
//! so it does not open after being moved to another field, another array position or another
//! row:
//!
//! ```text
//! "pg_encrypt_ml/v1/json-path" 0x00
//! per element: 'k' u32 length (big-endian) key bytes | 'i' u64 index (big-endian)
//! 0x00, then the caller's AAD (may be empty)
//! ```

use base64::Engine;
use serde_json::Value;

pub const PREFIX: &str = "encml:v1:";
const AAD_LABEL: &[u8] = b"pg_encrypt_ml/v1/json-path\0";

/// The deepest document `parse_document` reads: serde_json's recursion limit (objects and
/// arrays together). Postgres's jsonb nests deeper, up to its stack limit.
pub const MAX_DEPTH: usize = 127;

/// Why a document could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum DocumentError {
    /// Nested deeper than `MAX_DEPTH`; carries the depth found.
    TooDeep(usize),
    Invalid(String),
}

/// The nesting depth of JSON text (brackets outside strings), without parsing it: checked
/// before serde_json reads a document, so a deep one is refused by its depth rather than by a
/// parser error, and no recursion runs on it.
pub fn nesting_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Reads a document from its JSON text (jsonb's output), refusing one nested deeper than
/// `MAX_DEPTH`.
pub fn parse_document(text: &[u8]) -> Result<Value, DocumentError> {
    let depth = nesting_depth(text);
    if depth > MAX_DEPTH {
        return Err(DocumentError::TooDeep(depth));
    }
    serde_json::from_slice(text).map_err(|e| DocumentError::Invalid(e.to_string()))
}

/// One step of a concrete path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Elem {
    Key(String),
    Index(usize),
}

/// The AAD of a value at `path`, with the caller's `aad` appended.
pub fn path_aad(path: &[Elem], aad: &[u8]) -> Vec<u8> {
    let mut out = AAD_LABEL.to_vec();
    for e in path {
        match e {
            Elem::Key(k) => {
                out.push(b'k');
                out.extend_from_slice(&(k.len() as u32).to_be_bytes());
                out.extend_from_slice(k.as_bytes());
            }
            Elem::Index(i) => {
                out.push(b'i');
                out.extend_from_slice(&(*i as u64).to_be_bytes());
            }
        }
    }
    out.push(0);
    out.extend_from_slice(aad);
    out
}

/// Renders a concrete path the way Postgres writes a text[] path, for messages.
pub fn display_path(path: &[Elem]) -> String {
    let parts: Vec<String> = path
        .iter()
        .map(|e| match e {
            Elem::Key(k) => k.clone(),
            Elem::Index(i) => i.to_string(),
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

pub fn encode_ciphertext(value: &[u8]) -> String {
    let mut s = String::with_capacity(PREFIX.len() + value.len().div_ceil(3) * 4);
    s.push_str(PREFIX);
    base64::engine::general_purpose::STANDARD.encode_string(value, &mut s);
    s
}

/// The enc_bytea bytes of a ciphertext string, `None` if the string is not one (no prefix),
/// `Some(Err)` if it has the prefix but is not valid base64.
pub fn decode_ciphertext(s: &str) -> Option<Result<Vec<u8>, ()>> {
    let b64 = s.strip_prefix(PREFIX)?;
    Some(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| ()),
    )
}

/// Called with each visited value and its concrete path.
pub type Visitor<'a, E> = dyn FnMut(&[Elem], &mut Value) -> Result<(), E> + 'a;

/// Whether `v` carries the ciphertext prefix (what `decrypt_jsonb` acts on; a damaged value
/// with the prefix is an error there, not plaintext).
pub fn has_prefix(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.starts_with(PREFIX))
}

/// Whether `v` is a well-formed ciphertext string: the prefix, valid base64 and a structurally
/// valid enc_bytea. A plaintext that merely starts with the prefix is not one (so it is still
/// encrypted by `encrypt_jsonb`, and does not satisfy `jsonb_is_encrypted`).
pub fn is_ciphertext(v: &Value) -> bool {
    match v {
        Value::String(s) => {
            matches!(decode_ciphertext(s), Some(Ok(b)) if crate::aead::Parts::parse(&b).is_ok())
        }
        _ => false,
    }
}

/// Calls `f` on every value matched by `pattern`, with its concrete path.
pub fn visit_matches<E>(
    doc: &mut Value,
    pattern: &[String],
    f: &mut Visitor<'_, E>,
) -> Result<(), E> {
    let mut path = Vec::new();
    visit(doc, pattern, &mut path, f)
}

fn visit<E>(
    node: &mut Value,
    pattern: &[String],
    path: &mut Vec<Elem>,
    f: &mut Visitor<'_, E>,
) -> Result<(), E> {
    let Some((step, rest)) = pattern.split_first() else {
        return f(path, node);
    };
    match node {
        Value::Object(map) => {
            if step == "*" {
                for (k, child) in map.iter_mut() {
                    path.push(Elem::Key(k.clone()));
                    visit(child, rest, path, f)?;
                    path.pop();
                }
            } else {
                let key = if step == "\\*" { "*" } else { step.as_str() };
                if let Some(child) = map.get_mut(key) {
                    path.push(Elem::Key(key.to_string()));
                    visit(child, rest, path, f)?;
                    path.pop();
                }
            }
        }
        Value::Array(items) => {
            let indices: Vec<usize> = if step == "*" {
                (0..items.len()).collect()
            } else {
                match step.parse::<i64>() {
                    Ok(i) if i >= 0 && (i as usize) < items.len() => vec![i as usize],
                    Ok(i) if i < 0 && i.unsigned_abs() as usize <= items.len() => {
                        vec![items.len() - i.unsigned_abs() as usize]
                    }
                    _ => vec![],
                }
            };
            for i in indices {
                path.push(Elem::Index(i));
                visit(&mut items[i], rest, path, f)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

/// Calls `f` on every ciphertext string in `doc`, with its concrete path.
pub fn visit_ciphertexts<E>(doc: &mut Value, f: &mut Visitor<'_, E>) -> Result<(), E> {
    let mut path = Vec::new();
    walk(doc, &mut path, f)
}

fn walk<E>(node: &mut Value, path: &mut Vec<Elem>, f: &mut Visitor<'_, E>) -> Result<(), E> {
    match node {
        Value::String(_) if has_prefix(node) => {
            f(path, node)?;
            // A decrypted value may itself hold values encrypted under overlapping paths.
            if !matches!(node, Value::String(_)) {
                walk(node, path, f)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                path.push(Elem::Key(k.clone()));
                walk(child, path, f)?;
                path.pop();
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                path.push(Elem::Index(i));
                walk(child, path, f)?;
                path.pop();
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matches(doc: &Value, pattern: &[&str]) -> Vec<String> {
        let mut doc = doc.clone();
        let pattern: Vec<String> = pattern.iter().map(|s| s.to_string()).collect();
        let mut found = Vec::new();
        visit_matches::<()>(&mut doc, &pattern, &mut |p, _| {
            found.push(display_path(p));
            Ok(())
        })
        .unwrap();
        found
    }

    #[test]
    fn paths_keys_indices_and_wildcards() {
        let doc = json!({
            "weights": [1, 2],
            "layers": [{"bias": 1, "w": 2}, {"w": 3}, {"bias": [4]}],
            "*": "star", "0": "zero"
        });
        assert_eq!(matches(&doc, &["weights"]), ["{weights}"]);
        assert_eq!(
            matches(&doc, &["layers", "*", "bias"]),
            ["{layers,0,bias}", "{layers,2,bias}"]
        );
        assert_eq!(
            matches(&doc, &["layers", "-1", "bias", "0"]),
            ["{layers,2,bias,0}"]
        );
        assert_eq!(matches(&doc, &["layers", "5"]), Vec::<String>::new());
        assert_eq!(matches(&doc, &["missing", "x"]), Vec::<String>::new());
        assert_eq!(matches(&doc, &["weights", "x"]), Vec::<String>::new());
        assert_eq!(matches(&doc, &["\\*"]), ["{*}"]);
        assert_eq!(matches(&doc, &["0"]), ["{0}"]);
        assert_eq!(matches(&doc, &[]), ["{}"]);
        assert_eq!(matches(&doc, &["*"]).len(), 4);
    }

    #[test]
    fn aad_distinguishes_paths_and_rows() {
        let a = path_aad(&[Elem::Key("w".into()), Elem::Index(0)], b"");
        let b = path_aad(&[Elem::Key("w".into()), Elem::Index(1)], b"");
        let c = path_aad(&[Elem::Key("w".into()), Elem::Key("0".into())], b"");
        let d = path_aad(&[Elem::Key("w".into()), Elem::Index(0)], b"row 1");
        let e = path_aad(&[Elem::Key("ab".into())], b"");
        let f = path_aad(&[Elem::Key("a".into()), Elem::Key("b".into())], b"");
        for (x, y) in [(&a, &b), (&a, &c), (&a, &d), (&e, &f)] {
            assert_ne!(x, y);
        }
    }

    #[test]
    fn ciphertext_strings_round_trip_and_are_found() {
        let s = encode_ciphertext(b"EM\x01\x04abc");
        assert!(s.starts_with(PREFIX));
        assert_eq!(decode_ciphertext(&s), Some(Ok(b"EM\x01\x04abc".to_vec())));
        // Prefixed but not an enc_bytea: has the prefix, is no ciphertext.
        assert!(has_prefix(&Value::String(s.clone())) && !is_ciphertext(&Value::String(s.clone())));
        let real = crate::aead::AeadKey::from_root(&[1; 32], [2; 16], 1).seal(&[0; 12], b"1", b"");
        assert!(is_ciphertext(&Value::String(encode_ciphertext(&real))));
        assert_eq!(decode_ciphertext("plain"), None);
        assert_eq!(decode_ciphertext("encml:v1:***"), Some(Err(())));
        let mut doc = json!({"a": s.clone(), "b": [1, s.clone()], "c": "x"});
        let mut found = Vec::new();
        visit_ciphertexts::<()>(&mut doc, &mut |p, _| {
            found.push(display_path(p));
            Ok(())
        })
        .unwrap();
        assert_eq!(found, ["{a}", "{b,1}"]);
    }

    #[test]
    fn documents_deeper_than_the_limit_are_refused_by_depth() {
        let nested = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        assert_eq!(nesting_depth(nested(127).as_bytes()), 127);
        assert!(parse_document(nested(127).as_bytes()).is_ok());
        assert_eq!(
            parse_document(nested(128).as_bytes()),
            Err(DocumentError::TooDeep(128))
        );
        let arrays = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert_eq!(
            parse_document(arrays.as_bytes()),
            Err(DocumentError::TooDeep(5000))
        );
        // Brackets inside strings (escaped quotes included) do not count.
        assert_eq!(nesting_depth(br#"{"a":"[[[{{\"[[","b":[1]}"#), 2);
        assert!(matches!(
            parse_document(b"{\"a\":"),
            Err(DocumentError::Invalid(_))
        ));
    }
}
