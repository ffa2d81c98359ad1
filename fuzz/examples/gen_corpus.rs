//! Writes the seed corpus (fuzz/corpus/<target>/) from the real encoders, under the harness's
//! fixed keys, so the fuzzers start from valid values as well as a few broken ones.
//!
//!     cargo run --release --example gen_corpus [-- OUT_DIR]      (default: fuzz/corpus)
//!
//! Most seeds are reproducible; those made with a random nonce or key (wrapped keys, key
//! exports, encrypted vectors) change on every run.

use encml_core::format::{Header, HEADER_LEN};
use encml_core::ore::Domain;
use encml_core::stream::{ObjectCipher, StreamHeader};
use encml_core::tensor::{DType, TensorDescriptor};
use encml_core::{dp_seal, export, json_fields, tenant_token, wrap};
use encml_dp::flat::Flat;
use encml_dp::params::Params;
use encml_dp::state::State;
use encml_fuzz::fixtures::{self, DATABASE, KEY_ID, KEY_VERSION, NONCE, NOW_US, ROLE};
use std::fs;
use std::path::{Path, PathBuf};

struct Out(PathBuf);

impl Out {
    fn put(&self, target: &str, name: &str, bytes: impl AsRef<[u8]>) {
        let dir = self.0.join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), bytes).unwrap();
    }
}

/// A structurally valid enc_bytea whose "ciphertext" is `body` (for the json_fields walk).
fn fake_enc_bytea(body: &[u8]) -> Vec<u8> {
    let mut v = Header::new(KEY_ID, KEY_VERSION).encode().to_vec();
    v.extend_from_slice(&NONCE);
    v.extend_from_slice(body);
    v.extend_from_slice(&[0u8; 16]);
    v
}

/// `digits` with the last digit set so the number passes the Luhn check.
fn luhn(mut digits: Vec<u8>) -> String {
    for d in 0..10 {
        *digits.last_mut().unwrap() = d;
        if encml_core::fpe::luhn_valid(&digits) {
            break;
        }
    }
    digits.iter().map(|d| (b'0' + d) as char).collect()
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let out = Out(dir.clone());
    let aead = fixtures::aead();
    let det = fixtures::det();
    let ore = fixtures::ore();
    let masters = fixtures::masters();

    // format: enc_bytea, described enc_bytea, det_text, broken headers.
    let t = "format";
    let tensor_desc = TensorDescriptor::new(DType::Float32, &[2, 2]).encode();
    out.put(t, "enc_bytea_hello", aead.seal(&NONCE, b"hello", b""));
    out.put(t, "enc_bytea_empty", aead.seal(&NONCE, b"", b""));
    out.put(
        t,
        "enc_bytea_aad",
        aead.seal(&NONCE, b"secret", b"fuzz aad"),
    );
    out.put(
        t,
        "enc_bytea_described",
        aead.seal_described(&NONCE, &tensor_desc, &[0u8; 16], b""),
    );
    out.put(t, "det_text", det.seal(b"alice@example.com"));
    out.put(t, "det_text_empty", det.seal(b""));
    out.put(t, "header_only", Header::new(KEY_ID, KEY_VERSION).encode());
    let mut bad = aead.seal(&NONCE, b"x", b"");
    bad[2] = 2;
    out.put(t, "bad_version", &bad);
    let mut bad = aead.seal(&NONCE, b"x", b"");
    bad[3] = 4;
    bad[HEADER_LEN] = 0xff;
    out.put(t, "described_truncated", &bad);
    out.put(t, "round_trip_input", b"aad\0plaintext");

    // ore: one value per domain, a pair (compare), a bad trit, a short value.
    let t = "ore";
    let a = ore.encrypt(Domain::Int8, encml_core::ore::encode_i64(-42));
    let b = ore.encrypt(Domain::Float8, encml_core::ore::encode_f64(3.5));
    let c = ore.encrypt(Domain::Timestamptz, encml_core::ore::encode_i64(NOW_US));
    out.put(t, "int8", a);
    out.put(t, "float8", b);
    out.put(t, "timestamptz", c);
    let a2 = ore.encrypt(Domain::Int8, encml_core::ore::encode_i64(7));
    out.put(t, "pair", [&a[..], &a2[..]].concat());
    let mut bad = a;
    bad[30] = 0xff;
    out.put(t, "bad_trit", bad);
    out.put(t, "short", &a[..40]);
    out.put(
        t,
        "plaintexts",
        [1u64.to_le_bytes(), u64::MAX.to_le_bytes()].concat(),
    );

    // tensor: descriptors and described values.
    let t = "tensor";
    out.put(t, "float32_2x2", &tensor_desc);
    out.put(
        t,
        "int16_scalar",
        TensorDescriptor::new(DType::Int16, &[]).encode(),
    );
    out.put(
        t,
        "float64_3d",
        TensorDescriptor::new(DType::Float64, &[3, 1, 4]).encode(),
    );
    out.put(
        t,
        "overflow",
        TensorDescriptor::new(DType::Int32, &[u32::MAX; 3]).encode(),
    );
    let mut bad = tensor_desc.clone();
    bad[2] = 9;
    out.put(t, "bad_dtype", bad);
    out.put(
        t,
        "value_float32_2x2",
        aead.seal_described(&NONCE, &tensor_desc, &[1u8; 16], b""),
    );
    out.put(
        t,
        "value_wrong_len",
        aead.seal_described(&NONCE, &tensor_desc, &[1u8; 15], b""),
    );

    // json_fields: documents with ciphertext strings, nesting at and past the limit, broken.
    let t = "json_fields";
    let inner = json_fields::encode_ciphertext(&fake_enc_bytea(br#"{"b":[1,2.50e3,"x"]}"#));
    let nested = json_fields::encode_ciphertext(&fake_enc_bytea(
        format!(r#"{{"deeper":"{inner}"}}"#).as_bytes(),
    ));
    out.put(
        t,
        "doc_ciphertext",
        format!(r#"{{"a":"{inner}","n":null}}"#),
    );
    out.put(
        t,
        "doc_nested_ciphertext",
        format!(r#"[{{"*":"{nested}"}},true]"#),
    );
    out.put(
        t,
        "doc_real_ciphertext",
        format!(
            r#"{{"ssn":"{}"}}"#,
            json_fields::encode_ciphertext(&aead.seal(&NONCE, b"\"123-45-6789\"", b""))
        ),
    );
    out.put(t, "depth_127", "[".repeat(127) + &"]".repeat(127));
    out.put(t, "depth_128", "[".repeat(128) + &"]".repeat(128));
    out.put(t, "strings_with_brackets", r#"{"k\"[":"]\\","u":"\u005b"}"#);
    out.put(t, "bare_ciphertext", inner.clone());
    out.put(t, "bad_base64", "encml:v1:AAA=A");
    out.put(t, "invalid", r#"{"a":"#);

    // tenant_token: valid, expired, unknown key, malformed; own-token inputs.
    let t = "tenant_token";
    out.put(
        t,
        "valid",
        tenant_token::issue(&masters[0], "tenant-a", ROLE, DATABASE, NOW_US - 10),
    );
    out.put(
        t,
        "valid_key2",
        tenant_token::issue(&masters[1], "ünïcode", ROLE, DATABASE, NOW_US),
    );
    out.put(
        t,
        "expired",
        tenant_token::issue(&masters[0], "t", ROLE, DATABASE, NOW_US - 7_200_000_000),
    );
    out.put(
        t,
        "other_db",
        tenant_token::issue(&masters[0], "t", ROLE, "otherdb", NOW_US),
    );
    out.put(
        t,
        "unknown_key",
        "encml-tenant.v1.dA.1700000000000000.0000000000000000.AAAAAAAAAAAAAAAAAAAAAA",
    );
    out.put(t, "malformed", "encml-tenant.v1.a.b.c");
    out.put(
        t,
        "own_input",
        [&(NOW_US - 5).to_le_bytes()[..], b"\x01tenant-b"].concat(),
    );

    // dp_seal: sealed states under each key, broken ones.
    let t = "dp_seal";
    let empty = Flat::empty::<f64>();
    out.put(
        t,
        "sealed_key1",
        dp_seal::seal(&masters[0], &NONCE, empty.as_bytes()),
    );
    out.put(
        t,
        "sealed_key2",
        dp_seal::seal(&masters[1], &NONCE, Flat::empty::<i64>().as_bytes()),
    );
    out.put(t, "no_fingerprint", "dp1s:00");
    out.put(
        t,
        "not_hex",
        format!("dp1s:{}:zz", masters[0].fingerprint()),
    );

    // master_keys: provider outputs.
    let t = "master_keys";
    out.put(t, "two_keys", fixtures::MASTER_KEYS_TEXT);
    out.put(t, "duplicate", format!("{0}\n{0}\n", "ab".repeat(32)));
    out.put(t, "short_line", "abcdef\n");
    out.put(t, "not_hex", "g".repeat(64));
    out.put(t, "comments_only", "# nothing\n\n   \n");

    // export: an export for the fixed recipient, broken ones.
    let t = "export";
    let pk = fixtures::export_pk();
    let e = export::wrap_for(&pk, &KEY_ID, KEY_VERSION, &fixtures::ROOT).unwrap();
    out.put(t, "export", &e);
    let mut bad = e.clone();
    bad[3] = 2;
    out.put(t, "bad_suite", bad);
    out.put(t, "recipient_key", pk);

    // stream: an encrypted object of 3 chunks, broken headers.
    let t = "stream";
    let h = StreamHeader {
        key_id: KEY_ID,
        key_version: KEY_VERSION,
        chunk_size: 1024,
        plaintext_len: 2100,
        salt: [3; 16],
    };
    let c = ObjectCipher::new(&aead, h.clone()).unwrap();
    let mut obj = h.encode().to_vec();
    for i in 0..h.chunk_count() {
        let mut buf = vec![i as u8; h.chunk_plain_len(i)];
        c.seal_chunk(i, &mut buf).unwrap();
        obj.extend_from_slice(&buf);
    }
    out.put(t, "object_3_chunks", &obj);
    let mut empty_h = h.clone();
    empty_h.plaintext_len = 0;
    let mut empty_obj = empty_h.encode().to_vec();
    let mut buf = Vec::new();
    ObjectCipher::new(&aead, empty_h)
        .unwrap()
        .seal_chunk(0, &mut buf)
        .unwrap();
    empty_obj.extend_from_slice(&buf);
    out.put(t, "object_empty", empty_obj);
    let mut bad = h.encode();
    bad[53] = 1;
    out.put(t, "reserved_set", bad);
    let mut huge = h.clone();
    huge.plaintext_len = u64::MAX;
    out.put(t, "too_many_chunks", huge.encode());

    // wrap: wrapped data and service keys, labels.
    let t = "wrap";
    let dk = wrap::generate_data_key().unwrap();
    out.put(
        t,
        "wrapped",
        wrap::wrap(&masters[0], &KEY_ID, KEY_VERSION, &dk).unwrap(),
    );
    let sk = encml_core::service_key::ServiceKey::generate(
        encml_core::service_key::ServicePurpose::AuditChain,
        1,
    )
    .unwrap();
    out.put(t, "service_key", sk.wrap(&masters[0]).unwrap());
    out.put(t, "label_audit_chain", "svc:audit-chain:1");
    out.put(t, "label_audit_redact", "svc:audit-redact:4294967295");
    out.put(t, "purpose", "aead-stream");
    out.put(t, "bad_version", [2u8; 61]);

    // fpe: selector byte, then fields separated by 0xFF.
    let t = "fpe";
    let pan16 = luhn(b"4111111111111110".iter().map(|d| d - b'0').collect());
    let pan19 = luhn(b"6011000990139424000".iter().map(|d| d - b'0').collect());
    let key = fixtures::fpe_key();
    out.put(t, "pan16", [&[0u8][..], pan16.as_bytes()].concat());
    let spaced = format!(
        "{} {} {} {}",
        &pan16[..4],
        &pan16[4..8],
        &pan16[8..12],
        &pan16[12..]
    );
    out.put(t, "pan16_spaced", [&[0u8][..], spaced.as_bytes()].concat());
    out.put(t, "pan19_keep6", [&[4u8][..], pan19.as_bytes()].concat());
    let token = encml_core::fpe::tokenize_pan(&key, &pan16, 0).unwrap();
    out.put(t, "token16", [&[0u8][..], token.as_bytes()].concat());
    out.put(
        t,
        "keep_first_bad",
        [&[1u8][..], pan16.as_bytes(), &[0xff, 3]].concat(),
    );
    out.put(t, "digits", [&[2u8][..], b"0123456789\xfftweak"].concat());
    out.put(
        t,
        "greek",
        [&[2u8 + 4 * 4][..], "αβγδεζηθικ".as_bytes(), b"\xff"].concat(),
    );
    out.put(
        t,
        "custom_alphabet",
        [&[3u8][..], b"ab\xffabababababababababab\xfft"].concat(),
    );
    out.put(t, "short_value", [&[2u8][..], b"12345"].concat());

    // dp_state: texts, 96-byte states, internal states.
    let t = "dp_state";
    let mut f = Flat::empty::<f64>();
    f.add::<f64>(Params::new(1.0, None, 0.0, 10.0, 1).unwrap(), 3.25)
        .unwrap();
    let mut g = Flat::empty::<i64>();
    g.add::<i64>(Params::new(0.5, Some(1e-6), -5, 5, 1).unwrap(), 9)
        .unwrap();
    out.put(t, "text_f64", f.to_text());
    out.put(t, "text_i64_delta", g.to_text());
    out.put(t, "text_empty", Flat::empty::<f64>().to_text());
    out.put(
        t,
        "flat_f64",
        [&f.as_bytes()[..], &2.5f64.to_le_bytes()].concat(),
    );
    out.put(t, "flat_i64", g.as_bytes());
    let mut s = State::<f64>::default();
    let p = Params::new(2.0, None, -1.0, 1.0, 2).unwrap();
    s.add(p, 0.5, Some(7)).unwrap();
    s.add(p, 0.25, Some(7)).unwrap();
    s.add(p, -3.0, Some(8)).unwrap();
    out.put(t, "state_f64_units", s.serialize());
    let mut s = State::<i64>::default();
    s.add(Params::new(1.0, Some(1e-5), 0, 100, 1).unwrap(), 42, None)
        .unwrap();
    out.put(t, "state_i64", s.serialize());
    out.put(t, "not_hex", "dp1:".to_string() + &"zz".repeat(96));

    // fhe_vector: a vector, a sum state, a secret key, broken ones.
    let t = "fhe_vector";
    let (sk, pk) = encml_fhe::keys::generate();
    let enc = encml_fhe::params::Encoding::for_sums(16, 8, 1000).unwrap();
    let v = encml_fhe::vector::EncryptedVector::encrypt(&pk, &[1.5], enc).unwrap();
    let vb = v.to_bytes();
    out.put(t, "vector_dim1", &vb);
    let mut sum = encml_fhe::sum::Sum::default();
    sum.add_serialized(&vb).unwrap();
    out.put(t, "sum_one", sum.serialize());
    out.put(t, "sum_empty", encml_fhe::sum::Sum::default().serialize());
    out.put(t, "secret_key", &sk.to_bytes()[..]);
    out.put(t, "header_only", &vb[..40]);
    let mut bad = vb.clone();
    bad[20] = 2; // dim 2: wrong length
    out.put(t, "wrong_dim", &bad[..200]);

    // fhe_uint32: headers (bodies are tfhe-rs's and far larger than this corpus).
    let t = "fhe_uint32";
    out.put(t, "uint", [&b"EU\x01\x00"[..], &KEY_ID, b"body"].concat());
    out.put(t, "bool", [&b"EB\x01\x00"[..], &KEY_ID, b"b"].concat());
    out.put(
        t,
        "server",
        [&b"EKU\x01"[..], &KEY_ID, b"material"].concat(),
    );
    out.put(t, "header_only", [&b"EU\x01\x00"[..], &KEY_ID].concat());

    eprintln!("corpus written to {}", dir.display());
}
