//! pg_encrypt_ml-fhe: the client side of homomorphic aggregation, outside the database.
//!
//!   pg_encrypt_ml-fhe keygen --out DIR
//!       writes DIR/secret.key (mode 0600, stays with the decrypting party) and DIR/public.key
//!       (register it with encml.fhe_register_keyset); prints the key set id
//!   pg_encrypt_ml-fhe encrypt --public-key FILE [--value-bits 16] [--frac-bits 8]
//!                             [--max-terms 1000] [--in FILE] [--out FILE] [--base64]
//!       reads numbers (a JSON array, or CSV: separated by commas, spaces or newlines) and writes
//!       an fhe_vector (binary, or its base64 text form)
//!   pg_encrypt_ml-fhe decrypt --secret-key FILE [--in FILE] [--json]
//!       reads an fhe_vector (binary, base64, or psql's \x hex) and prints the values
//!   pg_encrypt_ml-fhe info [--in FILE]
//!
//! Scalar fhe_uint32 values (tfhe-rs FheUint32; built with the `uint32` feature):
//!   pg_encrypt_ml-fhe keygen --kind uint32 --out DIR
//!       writes DIR/client.key (0600, encrypts and decrypts) and DIR/server.key (the evaluation
//!       key to register); prints the key set id
//!   pg_encrypt_ml-fhe encrypt --client-key FILE --value N [--out FILE] [--base64]
//!   pg_encrypt_ml-fhe decrypt --client-key FILE [--in FILE]      (fhe_uint32 or fhe_bool)
//!
//! The encoding options must match the round's (encml.fhe_round_status).

use base64::Engine;
use encml_fhe::keys::{generate, PublicKey, SecretKey};
use encml_fhe::params::Encoding;
use encml_fhe::vector::{parse_header, EncryptedVector};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::ExitCode;

const USAGE: &str = "usage: pg_encrypt_ml-fhe keygen [--kind vector|uint32] --out DIR
       pg_encrypt_ml-fhe encrypt --public-key FILE [--value-bits 16] [--frac-bits 8] [--max-terms 1000] [--in FILE] [--out FILE] [--base64]
       pg_encrypt_ml-fhe decrypt --secret-key FILE [--in FILE] [--json]
       pg_encrypt_ml-fhe info [--in FILE]
       pg_encrypt_ml-fhe encrypt --client-key FILE --value N [--out FILE] [--base64]    (uint32)
       pg_encrypt_ml-fhe decrypt --client-key FILE [--in FILE]                          (uint32)";

type Result<T> = std::result::Result<T, String>;

struct Options(HashMap<String, String>);

impl Options {
    fn parse(args: &[String], flags: &[&str]) -> Result<Self> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let name = a
                .strip_prefix("--")
                .ok_or(format!("unexpected argument {a}"))?;
            if flags.contains(&name) {
                map.insert(name.to_string(), String::new());
            } else {
                let v = it.next().ok_or(format!("--{name} needs a value"))?;
                map.insert(name.to_string(), v.clone());
            }
        }
        Ok(Options(map))
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.as_str())
    }
    fn required(&self, name: &str) -> Result<&str> {
        self.get(name).ok_or(format!("--{name} is required"))
    }
    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: not a number: {v}")),
        }
    }
    fn flag(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

fn read_input(opts: &Options) -> Result<Vec<u8>> {
    match opts.get("in") {
        Some(path) => std::fs::read(path).map_err(|e| format!("{path}: {e}")),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| e.to_string())?;
            Ok(buf)
        }
    }
}

fn write_output(opts: &Options, bytes: &[u8]) -> Result<()> {
    match opts.get("out") {
        Some(path) => std::fs::write(path, bytes).map_err(|e| format!("{path}: {e}")),
        None => std::io::stdout()
            .write_all(bytes)
            .map_err(|e| e.to_string()),
    }
}

/// Numbers from a JSON array or from CSV-like text.
fn parse_numbers(text: &str) -> Result<Vec<f64>> {
    let t = text.trim();
    if t.starts_with('[') {
        return serde_json::from_str::<Vec<f64>>(t).map_err(|e| format!("JSON input: {e}"));
    }
    t.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<f64>().map_err(|_| format!("not a number: {s}")))
        .collect()
}

/// A value given as raw bytes, base64 text or psql's `\x` hex.
fn parse_vector_bytes(input: &[u8]) -> Result<Vec<u8>> {
    if input.starts_with(b"EV") || input.starts_with(b"EU\x01") || input.starts_with(b"EB\x01") {
        return Ok(input.to_vec());
    }
    let text =
        std::str::from_utf8(input).map_err(|_| "input is neither binary nor text".to_string())?;
    let text = text.trim();
    if let Some(hex) = text.strip_prefix("\\x") {
        return (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<std::result::Result<Vec<u8>, _>>()
            .map_err(|_| "bad hex input".to_string());
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| "input is not an fhe_vector (binary, base64 or \\x hex)".to_string())
}

/// Writes a secret file readable by its owner only, refusing to overwrite one.
fn write_secret(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes).map_err(|e| e.to_string())
}

fn keygen(opts: &Options) -> Result<()> {
    let dir = std::path::Path::new(opts.required("out")?);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    match opts.get("kind").unwrap_or("vector") {
        "vector" => {
            let (sk, pk) = generate();
            write_secret(&dir.join("secret.key"), &sk.to_bytes())?;
            std::fs::write(dir.join("public.key"), pk.to_bytes()).map_err(|e| e.to_string())?;
            println!("{}", uuid_string(&pk.key_id));
        }
        #[cfg(feature = "uint32")]
        "uint32" => {
            let (ck, material) = encml_fhe::uint32::generate();
            write_secret(&dir.join("client.key"), &ck.to_bytes())?;
            std::fs::write(dir.join("server.key"), &material).map_err(|e| e.to_string())?;
            println!("{}", uuid_string(&ck.key_id));
        }
        other => return Err(format!("unknown key set kind {other} (vector or uint32)")),
    }
    Ok(())
}

#[cfg(feature = "uint32")]
fn client_key(opts: &Options) -> Result<encml_fhe::uint32::ClientKeySet> {
    let path = opts.required("client-key")?;
    let bytes = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| format!("{path}: {e}"))?);
    encml_fhe::uint32::ClientKeySet::from_bytes(&bytes).map_err(|e| e.to_string())
}

#[cfg(feature = "uint32")]
fn encrypt_uint32(opts: &Options) -> Result<()> {
    let value: u32 = opts
        .required("value")?
        .parse()
        .map_err(|_| "--value: not a 32-bit unsigned integer".to_string())?;
    let bytes = client_key(opts)?.encrypt(value);
    if opts.flag("base64") {
        let mut s = base64::engine::general_purpose::STANDARD.encode(&bytes);
        s.push('\n');
        write_output(opts, s.as_bytes())
    } else {
        write_output(opts, &bytes)
    }
}

#[cfg(feature = "uint32")]
fn decrypt_uint32(opts: &Options) -> Result<()> {
    let ck = client_key(opts)?;
    let bytes = parse_vector_bytes(&read_input(opts)?)?;
    if bytes.starts_with(b"EB") {
        println!("{}", ck.decrypt_bool(&bytes).map_err(|e| e.to_string())?);
    } else {
        println!("{}", ck.decrypt(&bytes).map_err(|e| e.to_string())?);
    }
    Ok(())
}

fn uuid_string(id: &[u8; 16]) -> String {
    let h: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn encrypt(opts: &Options) -> Result<()> {
    let path = opts.required("public-key")?;
    let pk = PublicKey::from_bytes(&std::fs::read(path).map_err(|e| format!("{path}: {e}"))?)
        .map_err(|e| e.to_string())?;
    let encoding = Encoding::for_sums(
        opts.number("value-bits", 16u8)?,
        opts.number("frac-bits", 8u8)?,
        opts.number("max-terms", 1000u64)?,
    )
    .map_err(|e| e.to_string())?;
    let text = String::from_utf8(read_input(opts)?).map_err(|_| "input is not text".to_string())?;
    let values = parse_numbers(&text)?;
    let v = EncryptedVector::encrypt(&pk, &values, encoding).map_err(|e| e.to_string())?;
    let bytes = v.to_bytes();
    if opts.flag("base64") {
        let mut s = base64::engine::general_purpose::STANDARD.encode(&bytes);
        s.push('\n');
        write_output(opts, s.as_bytes())
    } else {
        write_output(opts, &bytes)
    }
}

fn decrypt(opts: &Options) -> Result<()> {
    let path = opts.required("secret-key")?;
    let key_bytes =
        zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| format!("{path}: {e}"))?);
    let sk = SecretKey::from_bytes(&key_bytes).map_err(|e| e.to_string())?;
    let v = EncryptedVector::from_bytes(&parse_vector_bytes(&read_input(opts)?)?)
        .map_err(|e| e.to_string())?;
    let values = v.decrypt(&sk).map_err(|e| e.to_string())?;
    let out = if opts.flag("json") {
        serde_json::to_string(&values).map_err(|e| e.to_string())?
    } else {
        values
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    println!("{out}");
    Ok(())
}

fn info(opts: &Options) -> Result<()> {
    let bytes = parse_vector_bytes(&read_input(opts)?)?;
    let (key_id, dim, terms, e) = parse_header(&bytes).map_err(|e| e.to_string())?;
    println!(
        "keyset={} dim={dim} terms={terms} value_bits={} frac_bits={} message_bits={}",
        uuid_string(&key_id),
        e.value_bits,
        e.frac_bits,
        e.message_bits
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(|s| s.as_str()) {
        Some("keygen") => Options::parse(&args[1..], &[]).and_then(|o| keygen(&o)),
        #[cfg(feature = "uint32")]
        Some("encrypt") if args.iter().any(|a| a == "--client-key") => {
            Options::parse(&args[1..], &["base64"]).and_then(|o| encrypt_uint32(&o))
        }
        #[cfg(feature = "uint32")]
        Some("decrypt") if args.iter().any(|a| a == "--client-key") => {
            Options::parse(&args[1..], &[]).and_then(|o| decrypt_uint32(&o))
        }
        Some("encrypt") => Options::parse(&args[1..], &["base64"]).and_then(|o| encrypt(&o)),
        Some("decrypt") => Options::parse(&args[1..], &["json"]).and_then(|o| decrypt(&o)),
        Some("info") => Options::parse(&args[1..], &[]).and_then(|o| info(&o)),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pg_encrypt_ml-fhe: {e}");
            ExitCode::FAILURE
        }
    }
}
