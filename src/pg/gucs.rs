//! Configuration parameters (GUCs). The master-key provider settings are SIGHUP and visible to
//! superusers only: they name where the master key comes from, which nobody else needs to know.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;

pub static MASTER_KEY_COMMAND: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
pub static MASTER_KEY_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static MASTER_KEY_PKCS11_MODULE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
pub static MASTER_KEY_PKCS11_TOKEN: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
pub static MASTER_KEY_PKCS11_KEYS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
pub static MASTER_KEY_PKCS11_PIN_FILE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
pub static KEY_CACHE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(1024);
pub static KEY_ROTATION_DAYS: GucSetting<i32> = GucSetting::<i32>::new(90);
pub static FHE_CLIENT_FUNCTIONS: GucSetting<bool> = GucSetting::<bool>::new(false);
pub static ALLOW_DEVELOPMENT_MASTER_KEY: GucSetting<bool> = GucSetting::<bool>::new(false);
pub static VERIFY_ORE_INPUT: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static TENANT_TOKEN_LIFETIME: GucSetting<i32> = GucSetting::<i32>::new(300);
pub static KEY_USE_RECORD_EVERY: GucSetting<i32> = GucSetting::<i32>::new(1 << 20);
pub static PRIVACY_SCOPE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"default"));

pub fn register() {
    GucRegistry::define_string_guc(
        c"encml.master_key_command",
        c"Shell command printing the master key (64 hex characters), then any previous master keys.",
        c"The first line is the current master key; further lines are previous keys still accepted \
          for unwrapping. Takes precedence over encml.master_key_file.",
        &MASTER_KEY_COMMAND,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"encml.master_key_file",
        c"File holding the master key (64 hex characters), then any previous master keys.",
        c"Used when encml.master_key_command is not set. When neither is set, keys cannot be \
          used unless encml.allow_development_master_key is on.",
        &MASTER_KEY_FILE,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"encml.master_key_pkcs11_module",
        c"Path of a PKCS#11 library whose token holds the master keys (an HSM); they never leave it.",
        c"Takes precedence over encml.master_key_command and encml.master_key_file, whose keys \
          then follow the token's as previous keys (for moving to the HSM with \
          encml.rotate_master_key()). Needs encml.master_key_pkcs11_token, _keys and _pin_file.",
        &MASTER_KEY_PKCS11_MODULE,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"encml.master_key_pkcs11_token",
        c"Label of the PKCS#11 token holding the master keys.",
        c"",
        &MASTER_KEY_PKCS11_TOKEN,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"encml.master_key_pkcs11_keys",
        c"Labels of the AES-256 master keys in the token, comma-separated, the current one first.",
        c"Further labels are previous master keys still accepted for unwrapping, until \
          encml.rotate_master_key() has rewrapped everything under the first.",
        &MASTER_KEY_PKCS11_KEYS,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"encml.master_key_pkcs11_pin_file",
        c"File holding the token's user PIN, readable only by the server's OS user (mode 0600 or stricter).",
        c"",
        &MASTER_KEY_PKCS11_PIN_FILE,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_int_guc(
        c"encml.key_cache_size",
        c"Unwrapped data-key versions each backend keeps in memory.",
        c"When the cache is full it is emptied; keys are unwrapped again on next use.",
        &KEY_CACHE_SIZE,
        1,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"encml.key_rotation_days",
        c"Days after which encml.compliance_report() warns about a key not rotated.",
        c"90 days is the quarterly rotation common policies ask for.",
        &KEY_ROTATION_DAYS,
        1,
        36500,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"encml.allow_development_master_key",
        c"Allows the development master key when no provider is set (development and tests only).",
        c"Without encml.master_key_command or encml.master_key_file the extension refuses to wrap \
          or unwrap keys, unless this is on: then it uses a random key generated in the data \
          directory, which travels with every base backup. Set in postgresql.conf.",
        &ALLOW_DEVELOPMENT_MASTER_KEY,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"encml.tenant_token_lifetime",
        c"How long a Citus tenant token holds after the coordinator issued it.",
        c"Checked when the token arrives on a node and every time the tenant is read there; a \
          transaction that runs longer loses its tenant on the workers (fails closed).",
        &TENANT_TOKEN_LIFETIME,
        5,
        3600,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"encml.key_use_record_every",
        c"Encryptions per key version counted in memory before they are added to encml.key_encryptions.",
        c"Counts not yet recorded are lost at a restart: at most this many per key version. Each \
          recording starts a short background worker.",
        &KEY_USE_RECORD_EVERY,
        1,
        1 << 30,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"encml.verify_ore_input",
        c"Checks the MAC of every ORE value that enters the database (text, binary, bytea casts).",
        c"A value whose MAC does not verify could corrupt btree indexes. Superuser-only: turn it \
          off only to restore a dump whose values arrive before the key catalog or use destroyed \
          keys.",
        &VERIFY_ORE_INPUT,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"encml.fhe_client_functions",
        c"Allows encml.fhe_encrypt and encml.fhe_decrypt inside the database (tests and demos only).",
        c"They see plaintext and a secret key inside the server, which homomorphic aggregation \
          exists to avoid; clients use the pg_encrypt_ml-fhe tool instead. Superuser-only.",
        &FHE_CLIENT_FUNCTIONS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"encml.privacy_scope",
        c"The privacy budget that dp aggregates charge (a scope of encml.set_privacy_budget).",
        c"An analyst can only spend budgets an admin gave them; switching scopes moves between them.",
        &PRIVACY_SCOPE,
        GucContext::Userset,
        GucFlags::default(),
    );
}

pub fn string(setting: &GucSetting<Option<CString>>) -> Option<String> {
    setting
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .filter(|s| !s.trim().is_empty())
}
