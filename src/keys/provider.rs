//! Where the master key comes from: a PKCS#11 token (`encml.master_key_pkcs11_*`: the keys never
//! leave it, and the keys of a command or file configured beside it follow as previous keys),
//! else `encml.master_key_command`, else `encml.master_key_file`,
//! else, only with `encml.allow_development_master_key = on`, a random key generated once in
//! `$PGDATA/pg_encrypt_ml/master.key` (development only: it sits next to the data and in every
//! base backup). A configuration that lost its provider is refused rather than silently wrapping
//! new keys under the development key.
//! The master key never enters the database; its output is held in `Zeroizing` buffers and never
//! echoed into an error.

use crate::pg::errors::{raise, raise_core, raise_full, warning};
use crate::pg::gucs;
use encml_core::master::{generate_master_key_hex, parse_master_keys, MasterKey};
use encml_core::wrap::{self, DataKey};
use pgrx::PgSqlErrorCode;
use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::rc::Rc;
use zeroize::Zeroizing;

/// At most this much provider output is read (a few keys and comments fit easily).
const MAX_PROVIDER_OUTPUT: u64 = 64 * 1024;

#[derive(Clone, PartialEq, Eq, Debug)]
enum Source {
    Command(String),
    File(String),
    Default(PathBuf),
    /// Keys in a token, then (for moving to it) those of a command or file as previous keys.
    Pkcs11 {
        module: String,
        token: String,
        keys: Vec<String>,
        pin_file: String,
        previous: Option<Box<Source>>,
    },
}

struct Loaded {
    source: Source,
    keys: Rc<Vec<MasterKey>>,
}

thread_local! {
    static LOADED: RefCell<Option<Loaded>> = const { RefCell::new(None) };
    /// Whether this backend warned that it uses the development master key.
    static WARNED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn configured_source() -> Source {
    if let Some(module) = gucs::string(&gucs::MASTER_KEY_PKCS11_MODULE) {
        let setting = |g, name: &str| {
            gucs::string(g).unwrap_or_else(|| {
                raise_full(
                    PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
                    format!("encml.master_key_pkcs11_module is set but {name} is not"),
                    None,
                    Some("The PKCS#11 provider needs encml.master_key_pkcs11_token, _keys and _pin_file.".into()),
                )
            })
        };
        let keys = setting(
            &gucs::MASTER_KEY_PKCS11_KEYS,
            "encml.master_key_pkcs11_keys",
        )
        .split(',')
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
        return Source::Pkcs11 {
            token: setting(
                &gucs::MASTER_KEY_PKCS11_TOKEN,
                "encml.master_key_pkcs11_token",
            ),
            pin_file: setting(
                &gucs::MASTER_KEY_PKCS11_PIN_FILE,
                "encml.master_key_pkcs11_pin_file",
            ),
            keys,
            module,
            previous: gucs::string(&gucs::MASTER_KEY_COMMAND)
                .map(Source::Command)
                .or_else(|| gucs::string(&gucs::MASTER_KEY_FILE).map(Source::File))
                .map(Box::new),
        };
    }
    if let Some(cmd) = gucs::string(&gucs::MASTER_KEY_COMMAND) {
        Source::Command(cmd)
    } else if let Some(file) = gucs::string(&gucs::MASTER_KEY_FILE) {
        Source::File(file)
    } else if gucs::ALLOW_DEVELOPMENT_MASTER_KEY.get() {
        Source::Default(data_dir().join("pg_encrypt_ml").join("master.key"))
    } else {
        raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "no master key provider is configured",
            None,
            Some(
                "Set encml.master_key_command (a KMS or Vault CLI) or encml.master_key_file in \
                 postgresql.conf; for development only, encml.allow_development_master_key = on."
                    .into(),
            ),
        )
    }
}

fn data_dir() -> PathBuf {
    // SAFETY: DataDir is set at startup in every backend.
    let p = unsafe { pgrx::pg_sys::DataDir };
    if p.is_null() {
        crate::pg::errors::internal("data directory is not known");
    }
    // SAFETY: `p` is DataDir, tested for NULL above: a NUL-terminated path malloc'd at startup
    // and never freed or changed in a backend; it is copied at once.
    PathBuf::from(
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned(),
    )
}

fn read_source(source: &Source) -> Zeroizing<Vec<u8>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_PROVIDER_OUTPUT as usize + 1));
    match source {
        Source::Command(cmd) => {
            let mut child = Command::new("/bin/sh")
                .arg("-c")
                .arg(cmd)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| {
                    raise(
                        PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
                        format!("could not run encml.master_key_command: {e}"),
                    )
                });
            let read = child
                .stdout
                .take()
                .expect("piped")
                .take(MAX_PROVIDER_OUTPUT)
                .read_to_end(&mut buf);
            let status = child.wait();
            match (read, status) {
                (Ok(_), Ok(s)) if s.success() => {}
                (_, Ok(s)) => raise(
                    PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
                    format!("encml.master_key_command failed ({s})"),
                ),
                (_, Err(e)) => raise(
                    PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
                    format!("encml.master_key_command could not be waited for: {e}"),
                ),
            }
        }
        Source::File(path) => read_file(&PathBuf::from(path), &mut buf),
        Source::Default(path) => {
            if !path.exists() {
                generate_default(path);
            }
            read_file(path, &mut buf)
        }
        Source::Pkcs11 { .. } => unreachable!("a token's keys are not read as text"),
    }
    buf
}

/// The token's PIN, from a file only the server's OS user may read.
fn read_pin(path: &str) -> Zeroizing<String> {
    use std::os::unix::fs::MetadataExt;
    let fail = |why: String| -> ! {
        raise(
            PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
            format!("encml.master_key_pkcs11_pin_file \"{path}\": {why}"),
        )
    };
    let meta = std::fs::metadata(path).unwrap_or_else(|e| fail(e.to_string()));
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me || meta.mode() & 0o077 != 0 {
        fail(format!(
            "must belong to the server's OS user and be readable by it alone (mode 0600; it has \
             owner uid {} and mode {:o})",
            meta.uid(),
            meta.mode() & 0o777
        ));
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(256));
    read_file(&PathBuf::from(path), &mut buf);
    let text = std::str::from_utf8(&buf).unwrap_or_else(|_| fail("the PIN is not UTF-8".into()));
    let pin = Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_string());
    if pin.is_empty() {
        fail("the file is empty".into());
    }
    pin
}

/// The token's keys, then those of the previous source (each key once).
fn token_keys(
    module: &str,
    token: &str,
    keys: &[String],
    pin_file: &str,
    previous: Option<&Source>,
) -> Vec<MasterKey> {
    let pin = read_pin(pin_file);
    let config = encml_hsm::TokenConfig {
        module: std::path::Path::new(module),
        token_label: token,
        key_labels: keys,
        pin: &pin,
    };
    let mut all = encml_hsm::master_keys(&config).unwrap_or_else(|e| raise_core(e));
    if let Some(previous) = previous {
        for key in parse_source(previous) {
            if !all.iter().any(|k| k.fingerprint() == key.fingerprint()) {
                all.push(key);
            }
        }
    }
    all
}

/// The keys of a command, file or the development key (provider output as text).
fn parse_source(source: &Source) -> Vec<MasterKey> {
    let raw = read_source(source);
    let text = std::str::from_utf8(&raw).unwrap_or_else(|_| {
        raise_core(encml_core::Error::MasterKeyFormat(
            "output is not UTF-8".into(),
        ))
    });
    parse_master_keys(text).unwrap_or_else(|e| raise_core(e))
}

fn read_file(path: &PathBuf, buf: &mut Zeroizing<Vec<u8>>) {
    let result =
        std::fs::File::open(path).and_then(|f| f.take(MAX_PROVIDER_OUTPUT).read_to_end(buf));
    if let Err(e) = result {
        raise(
            PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
            format!("could not read master key file \"{}\": {e}", path.display()),
        );
    }
}

/// Creates the default key file atomically: written to a private temporary file, then linked
/// into place, so concurrent backends agree on one key and never read a half-written file.
fn generate_default(path: &PathBuf) {
    let dir = path.parent().expect("has a parent");
    let fail = |what: &str, e: std::io::Error| -> ! {
        raise(
            PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
            format!(
                "could not create the default master key file \"{}\" ({what}): {e}",
                path.display()
            ),
        )
    };
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        fail("directory", e);
    }
    let key = generate_master_key_hex().unwrap_or_else(|e| raise_core(e));
    let tmp = dir.join(format!("master.key.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(b"# pg_encrypt_ml development master key; use encml.master_key_command in production\n")?;
            f.write_all(key.as_bytes())?;
            f.sync_all()
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        fail("write", e);
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            warning(
                "pg_encrypt_ml generated a development master key in the data directory",
                Some(
                    "This default is for development: the key sits next to the data and in every \
                     base backup. In production set encml.master_key_command (a KMS or Vault CLI) \
                     or encml.master_key_file."
                        .into(),
                ),
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => fail("link", e),
    }
}

fn load(source: Source) -> Rc<Vec<MasterKey>> {
    let keys = Rc::new(match &source {
        Source::Pkcs11 {
            module,
            token,
            keys,
            pin_file,
            previous,
        } => token_keys(module, token, keys, pin_file, previous.as_deref()),
        other => parse_source(other),
    });
    // SAFETY: a backend global, read only.
    let parallel_worker = unsafe { pgrx::pg_sys::ParallelWorkerNumber } >= 0
        // Background workers (subject export/erasure, detached writers) serve a backend, which
        // warns on its own use; their warnings would repeat on every call.
        || unsafe { !pgrx::pg_sys::MyBgworkerEntry.is_null() };
    if matches!(source, Source::Default(_)) && !parallel_worker && !WARNED.with(|w| w.replace(true))
    {
        // Once per backend (parallel and background workers' backend warns): nobody should run on it
        // unawares.
        warning(
            "pg_encrypt_ml is using the development master key",
            Some(
                "encml.allow_development_master_key is on and no provider is set: the key sits \
                 in the data directory and in every base backup. Set encml.master_key_command or \
                 encml.master_key_file in production."
                    .into(),
            ),
        );
    }
    LOADED.with(|l| {
        *l.borrow_mut() = Some(Loaded {
            source,
            keys: keys.clone(),
        })
    });
    keys
}

/// The master keys, cached per backend until the provider settings change.
fn cached() -> Rc<Vec<MasterKey>> {
    let source = configured_source();
    let hit = LOADED.with(|l| match &*l.borrow() {
        Some(loaded) if loaded.source == source => Some(loaded.keys.clone()),
        _ => None,
    });
    hit.unwrap_or_else(|| load(source))
}

/// Reads the provider again (after an operator changed it) and returns every key, current first.
pub fn reload() -> Rc<Vec<MasterKey>> {
    load(configured_source())
}

/// Unwraps a data key with the master key whose fingerprint is stored next to it. If the cached
/// provider output lacks that key, the provider is read once more before giving up.
pub fn unwrap_data_key(
    fingerprint: &str,
    key_id: &[u8; 16],
    version: u32,
    wrapped: &[u8],
) -> DataKey {
    let find = |keys: &Rc<Vec<MasterKey>>| keys.iter().position(|k| k.fingerprint() == fingerprint);
    let mut keys = cached();
    if find(&keys).is_none() {
        keys = reload();
    }
    let Some(i) = find(&keys) else {
        raise_core(encml_core::Error::UnknownMasterKey {
            fingerprint: fingerprint.to_string(),
        })
    };
    wrap::unwrap(&keys[i], key_id, version, wrapped).unwrap_or_else(|e| match e {
        encml_core::Error::AuthenticationFailed => raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!(
                "the wrapped data key {} version {version} does not unwrap under master key {fingerprint}",
                uuid::Uuid::from_bytes(*key_id)
            ),
        ),
        other => raise_core(other),
    })
}

/// A fresh data key for `version` of key `key_id`, wrapped by the current master key (the
/// provider is read again, so a master key an operator just rotated in is used at once).
/// Returns the wrapped key and the master key's fingerprint; the raw key is zeroized on return.
pub fn new_wrapped_data_key(key_id: &[u8; 16], version: u32) -> (Vec<u8>, String) {
    let masters = reload();
    let current = &masters[0];
    let data_key = wrap::generate_data_key().unwrap_or_else(|e| raise_core(e));
    let wrapped = wrap::wrap(current, key_id, version, &data_key).unwrap_or_else(|e| raise_core(e));
    (wrapped, current.fingerprint().to_string())
}

/// Every master key the provider gives (current first), cached per backend.
pub fn master_keys() -> Rc<Vec<MasterKey>> {
    cached()
}
