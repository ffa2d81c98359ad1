//! pg_encrypt_ml-fhe: the client side of homomorphic aggregation, outside the database
//! (docs/fhe.md). `pg_encrypt_ml-fhe --help`, and `--help` after each subcommand, say the rest.
//!
//!   keygen [--kind vector|uint32] --out DIR [--proofs ...]   a key set (and a CRS); prints its id
//!   encrypt --public-key FILE [encoding] ...     numbers into an fhe_vector
//!   encrypt --public-key FILE --crs FILE --round N ...   numbers into a proven update
//!   encrypt --client-key FILE --value N ...      one number into an fhe_uint32
//!   decrypt --secret-key FILE | --client-key FILE [--in FILE] [--json]
//!   info [--in FILE]                             an fhe_vector's or proven update's header
//!
//! The encoding options must match the round's (encml.fhe_round_status).

use base64::Engine;
use clap::{Parser, Subcommand, ValueEnum};
use encml_fhe::client::{bytes_from_text, id_string, write_secret_file};
use encml_fhe::keys::{generate, PublicKey, SecretKey};
use encml_fhe::params::Encoding;
use encml_fhe::vector::{parse_header, EncryptedVector, Scheme};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

type Result<T> = std::result::Result<T, String>;

/// The client side of pg_encrypt_ml's homomorphic aggregation (docs/fhe.md): key generation,
/// encryption of model updates, decryption of round sums.
#[derive(Parser)]
#[command(
    name = "pg_encrypt_ml-fhe",
    version,
    about = "The client side of pg_encrypt_ml's homomorphic aggregation (docs/fhe.md): key \
             generation, encryption of model updates, decryption of round sums"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generates a key set and prints its id (the id encml.fhe_register_keyset returns).
    ///
    /// vector: DIR/secret.key (mode 0600; stays with the party that decrypts round sums) and
    /// DIR/public.key (register it with encml.fhe_register_keyset). uint32: DIR/client.key
    /// (0600; encrypts and decrypts) and DIR/server.key (the evaluation key to register).
    Keygen {
        /// The kind of key set.
        #[arg(long, value_enum, default_value_t = Kind::Vector)]
        kind: Kind,
        /// Directory to write the keys to (created if missing; a secret key there is never
        /// overwritten).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Also writes DIR/crs.bin, the public parameters of proofs for rounds of this key set
        /// (register it with the key set). The randomness it is made from, which would let
        /// its holder forge proofs, is discarded. About a minute at 2,048 values per proof.
        #[arg(long, requires = "value_bits")]
        proofs: bool,
        /// With --proofs: bits of each value (sign, integer and fraction bits), as the rounds'
        /// value_bits.
        #[arg(long, requires = "proofs")]
        value_bits: Option<u8>,
        /// With --proofs: how many updates a round sums at most (its max_contributions).
        #[arg(long, default_value_t = 1000)]
        max_contributions: u64,
        /// With --proofs: values one proof covers, a power of two from 64 to 2048 (smaller
        /// proves faster and makes a smaller CRS, but every chunk carries a 16 KiB mask).
        #[arg(long, default_value_t = 2048)]
        values_per_proof: usize,
    },
    /// Encrypts numbers into an fhe_vector under a public key, or one number into an
    /// fhe_uint32 under a client key.
    ///
    /// Input (--in, or standard input): a JSON array of numbers, or numbers separated by
    /// commas, spaces or newlines. The encoding must equal the round's: --value-bits and
    /// --frac-bits as given to encml.fhe_open_round, --max-terms its max_contributions (all
    /// three are shown by encml.fhe_round_status).
    Encrypt {
        /// The key set's public.key (fhe_vector).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["client_key", "value"],
              required_unless_present = "client_key")]
        public_key: Option<PathBuf>,
        /// The key set's crs.bin: writes a proven update for --round instead of an fhe_vector
        /// (value bits and max terms are the CRS's).
        #[arg(long, value_name = "FILE", requires = "round", conflicts_with_all = ["value_bits", "max_terms"])]
        crs: Option<PathBuf>,
        /// The round the proven update is for (encml.fhe_round_status's id): its proofs hold for
        /// that round only.
        #[arg(long, requires = "crs")]
        round: Option<i64>,
        /// Bits of each value: sign, integer and fraction bits together.
        #[arg(long, default_value_t = 16)]
        value_bits: u8,
        /// Fraction bits among them (a value is rounded to a multiple of 2^-frac_bits).
        #[arg(long, default_value_t = 8)]
        frac_bits: u8,
        /// How many updates may be summed: the round's max_contributions.
        #[arg(long, default_value_t = 1000)]
        max_terms: u64,
        /// The key set's client.key (fhe_uint32).
        #[arg(long, value_name = "FILE", requires = "value")]
        client_key: Option<PathBuf>,
        /// The number to encrypt into an fhe_uint32 (0 to 4294967295).
        #[arg(long)]
        value: Option<u32>,
        /// Input file (default: standard input).
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
        /// Output file (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Writes the value's base64 text form (a literal psql takes) instead of bytes.
        #[arg(long)]
        base64: bool,
    },
    /// Decrypts an fhe_vector (a round sum) with the secret key, or an fhe_uint32 or fhe_bool
    /// with the client key.
    ///
    /// Input (--in, or standard input): the value as bytes, its base64 text form, or psql's
    /// \x hex form. Output: the values separated by commas, or a JSON array with --json.
    Decrypt {
        /// The key set's secret.key (fhe_vector).
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with = "client_key",
            required_unless_present = "client_key"
        )]
        secret_key: Option<PathBuf>,
        /// The key set's client.key (fhe_uint32, fhe_bool).
        #[arg(long, value_name = "FILE")]
        client_key: Option<PathBuf>,
        /// The key set's public.key, beside a secret.key written before 0.2.0 (which lacks the
        /// public key's bias that sums of proven updates need).
        #[arg(long, value_name = "FILE", requires = "secret_key")]
        public_key: Option<PathBuf>,
        /// Input file (default: standard input).
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
        /// Prints a JSON array of numbers.
        #[arg(long)]
        json: bool,
    },
    /// Prints an fhe_vector's header (key set, dimension, terms, encoding, whether proven), or a
    /// proven update's (key set, round, dimension, encoding).
    Info {
        /// Input file (default: standard input).
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// Packed LWE vectors, summed by encml.fhe_vector_sum and FHE rounds.
    Vector,
    /// tfhe-rs FheUint32 scalars (fhe_uint32).
    Uint32,
}

fn read_input(input: Option<&Path>) -> Result<Vec<u8>> {
    match input {
        Some(path) => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display())),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| e.to_string())?;
            Ok(buf)
        }
    }
}

/// Writes `bytes`, or their base64 text form and a newline.
fn write_output(out: Option<&Path>, bytes: &[u8], base64: bool) -> Result<()> {
    let text;
    let bytes = if base64 {
        text = format!(
            "{}\n",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        );
        text.as_bytes()
    } else {
        bytes
    };
    match out {
        Some(path) => std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display())),
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
    bytes_from_text(input).map_err(|e| e.to_string())
}

/// Writes a secret file readable by its owner only, refusing to overwrite one.
fn write_secret(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    write_secret_file(path, bytes)
}

/// With --proofs: value bits, max contributions, values per proof.
type ProofOptions = Option<(u8, u64, usize)>;

fn keygen(kind: Kind, dir: &Path, proofs: ProofOptions) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    match kind {
        Kind::Vector => {
            // The CRS's parameters are checked before any key is written.
            let encoding = proofs
                .map(|(value_bits, max, _)| Encoding::for_sums(value_bits, 0, max))
                .transpose()
                .map_err(|e| e.to_string())?;
            let (sk, pk) = generate();
            write_secret(&dir.join("secret.key"), &sk.to_bytes())?;
            std::fs::write(dir.join("public.key"), pk.to_bytes()).map_err(|e| e.to_string())?;
            if let (Some(e), Some((_, _, chunk))) = (encoding, proofs) {
                write_crs(dir, e, chunk)?;
            }
            println!("{}", id_string(&pk.key_id));
        }
        #[cfg(feature = "uint32")]
        Kind::Uint32 => {
            let (ck, material) = encml_fhe::uint32::generate();
            write_secret(&dir.join("client.key"), &ck.to_bytes())?;
            std::fs::write(dir.join("server.key"), &material).map_err(|e| e.to_string())?;
            println!("{}", id_string(&ck.key_id));
        }
        #[cfg(not(feature = "uint32"))]
        Kind::Uint32 => return Err(NO_UINT32.into()),
    }
    Ok(())
}

#[cfg(not(feature = "uint32"))]
const NO_UINT32: &str = "this build has no fhe_uint32 support (the uint32 feature)";

#[cfg(feature = "uint32")]
fn client_key(path: &Path) -> Result<encml_fhe::uint32::ClientKeySet> {
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    encml_fhe::uint32::ClientKeySet::from_bytes(&bytes).map_err(|e| e.to_string())
}

#[cfg(feature = "uint32")]
fn encrypt_uint32(key: &Path, value: u32, out: Option<&Path>, base64: bool) -> Result<()> {
    write_output(out, &client_key(key)?.encrypt(value), base64)
}

#[cfg(feature = "uint32")]
fn decrypt_uint32(key: &Path, input: Option<&Path>) -> Result<()> {
    let ck = client_key(key)?;
    let bytes = parse_vector_bytes(&read_input(input)?)?;
    if bytes.starts_with(b"EB") {
        println!("{}", ck.decrypt_bool(&bytes).map_err(|e| e.to_string())?);
    } else {
        println!("{}", ck.decrypt(&bytes).map_err(|e| e.to_string())?);
    }
    Ok(())
}

#[cfg(feature = "zk")]
fn write_crs(dir: &Path, e: Encoding, chunk: usize) -> Result<()> {
    let crs = encml_fhe::proven::Crs::generate(e.value_bits, e.message_bits, chunk)
        .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("crs.bin"), crs.to_bytes()).map_err(|e| e.to_string())?;
    eprintln!(
        "crs.bin: proofs of {}-bit values, sums of {} message bits, {chunk} values per proof",
        e.value_bits, e.message_bits
    );
    Ok(())
}

#[cfg(not(feature = "zk"))]
fn write_crs(_: &Path, _: Encoding, _: usize) -> Result<()> {
    Err(NO_ZK.into())
}

#[cfg(not(feature = "zk"))]
const NO_ZK: &str = "this build has no proven updates (the zk feature)";

fn read_public_key(key: &Path) -> Result<PublicKey> {
    PublicKey::from_bytes(&std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?)
        .map_err(|e| e.to_string())
}

#[cfg(feature = "zk")]
fn encrypt_proven(
    key: &Path,
    crs: &Path,
    (round, frac_bits): (i64, u8),
    input: Option<&Path>,
    out: Option<&Path>,
    base64: bool,
) -> Result<()> {
    let pk = read_public_key(key)?;
    let crs = encml_fhe::proven::Crs::from_bytes_trusted(
        &std::fs::read(crs).map_err(|e| format!("{}: {e}", crs.display()))?,
    )
    .map_err(|e| e.to_string())?;
    let text =
        String::from_utf8(read_input(input)?).map_err(|_| "input is not text".to_string())?;
    let values = parse_numbers(&text)?;
    let update = encml_fhe::proven::encrypt_and_prove(&pk, &crs, &values, frac_bits, round)
        .map_err(|e| e.to_string())?;
    write_output(out, &update, base64)
}

#[cfg(not(feature = "zk"))]
fn encrypt_proven(
    _: &Path,
    _: &Path,
    _: (i64, u8),
    _: Option<&Path>,
    _: Option<&Path>,
    _: bool,
) -> Result<()> {
    Err(NO_ZK.into())
}

fn encrypt(
    key: &Path,
    (value_bits, frac_bits, max_terms): (u8, u8, u64),
    input: Option<&Path>,
    out: Option<&Path>,
    base64: bool,
) -> Result<()> {
    let pk = read_public_key(key)?;
    let encoding =
        Encoding::for_sums(value_bits, frac_bits, max_terms).map_err(|e| e.to_string())?;
    let text =
        String::from_utf8(read_input(input)?).map_err(|_| "input is not text".to_string())?;
    let values = parse_numbers(&text)?;
    let v = EncryptedVector::encrypt(&pk, &values, encoding).map_err(|e| e.to_string())?;
    write_output(out, &v.to_bytes(), base64)
}

fn decrypt(key: &Path, public_key: Option<&Path>, input: Option<&Path>, json: bool) -> Result<()> {
    let key_bytes =
        zeroize::Zeroizing::new(std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?);
    let mut sk = SecretKey::from_bytes(&key_bytes).map_err(|e| e.to_string())?;
    if let Some(pk) = public_key {
        sk = sk
            .with_public_key(&read_public_key(pk)?)
            .map_err(|e| e.to_string())?;
    }
    let v = EncryptedVector::from_bytes(&parse_vector_bytes(&read_input(input)?)?)
        .map_err(|e| e.to_string())?;
    let values = v.decrypt(&sk).map_err(|e| e.to_string())?;
    let out = if json {
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

fn info(input: Option<&Path>) -> Result<()> {
    let bytes = parse_vector_bytes(&read_input(input)?)?;
    #[cfg(feature = "zk")]
    if encml_fhe::proven::is_proven_update(&bytes) {
        let h = encml_fhe::proven::header(&bytes).map_err(|e| e.to_string())?;
        println!(
            "proven update: keyset={} round={} dim={} value_bits={} frac_bits={} message_bits={} values_per_proof={}",
            id_string(&h.key_id),
            h.round,
            h.dim,
            h.encoding.value_bits,
            h.encoding.frac_bits,
            h.encoding.message_bits,
            h.chunk
        );
        return Ok(());
    }
    let (key_id, dim, terms, e, scheme) = parse_header(&bytes).map_err(|e| e.to_string())?;
    let proven = match scheme {
        Scheme::Difference => "no".to_string(),
        Scheme::Single { chunk } => format!("yes ({chunk} values per proof)"),
    };
    println!(
        "keyset={} dim={dim} terms={terms} value_bits={} frac_bits={} message_bits={} proven={proven}",
        id_string(&key_id),
        e.value_bits,
        e.frac_bits,
        e.message_bits
    );
    Ok(())
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Keygen {
            kind,
            out,
            proofs,
            value_bits,
            max_contributions,
            values_per_proof,
        } => keygen(
            kind,
            &out,
            value_bits
                .filter(|_| proofs)
                .map(|v| (v, max_contributions, values_per_proof)),
        ),
        Command::Encrypt {
            public_key: Some(key),
            crs: Some(crs),
            round: Some(round),
            frac_bits,
            input,
            out,
            base64,
            ..
        } => encrypt_proven(
            &key,
            &crs,
            (round, frac_bits),
            input.as_deref(),
            out.as_deref(),
            base64,
        ),
        Command::Encrypt {
            public_key: Some(key),
            value_bits,
            frac_bits,
            max_terms,
            input,
            out,
            base64,
            ..
        } => encrypt(
            &key,
            (value_bits, frac_bits, max_terms),
            input.as_deref(),
            out.as_deref(),
            base64,
        ),
        #[cfg(feature = "uint32")]
        Command::Encrypt {
            client_key: Some(key),
            value: Some(value),
            out,
            base64,
            ..
        } => encrypt_uint32(&key, value, out.as_deref(), base64),
        Command::Encrypt { .. } => Err(neither_key()),
        Command::Decrypt {
            secret_key: Some(key),
            public_key,
            input,
            json,
            ..
        } => decrypt(&key, public_key.as_deref(), input.as_deref(), json),
        #[cfg(feature = "uint32")]
        Command::Decrypt {
            client_key: Some(key),
            input,
            ..
        } => decrypt_uint32(&key, input.as_deref()),
        Command::Decrypt { .. } => Err(neither_key()),
        Command::Info { input } => info(input.as_deref()),
    }
}

/// What a command given a client key says when it cannot use one.
fn neither_key() -> String {
    #[cfg(feature = "uint32")]
    return "give --public-key (fhe_vector), or --client-key with --value (fhe_uint32)".into();
    #[cfg(not(feature = "uint32"))]
    return NO_UINT32.into();
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pg_encrypt_ml-fhe: {e}");
            ExitCode::FAILURE
        }
    }
}
