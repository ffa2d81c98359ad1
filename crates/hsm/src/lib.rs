//! Master keys that never leave a PKCS#11 token (an HSM, a cloud HSM's PKCS#11 library, or
//! SoftHSM2 in tests), through the `cryptoki` crate.
//!
//! Each process (backend or background worker) loads the module and calls `C_Initialize` on first
//! use, never before: the postmaster never opens the token, so no forked child inherits a
//! session (PKCS#11 forbids using a context across fork). A process holds one read-only session
//! per token, logged in as the user with the PIN, for its whole life; so the token sees at most
//! one session per process that needed a master key (see docs/keys.md for the bound). The keys
//! are found by label (`CKA_LABEL`, secret keys of type AES); each becomes a `MasterKey` whose
//! wrapping runs `C_Encrypt`/`C_Decrypt` with `CKM_AES_GCM` in the token.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use encml_core::error::{Error, Result};
use encml_core::master::{MasterKey, TokenKey};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use zeroize::Zeroizing;

/// Where the master keys are: the module, the token's label, the keys' labels (current first)
/// and the user PIN.
pub struct TokenConfig<'a> {
    pub module: &'a Path,
    pub token_label: &'a str,
    pub key_labels: &'a [String],
    pub pin: &'a Zeroizing<String>,
}

/// A logged-in session with one token.
struct OpenToken {
    label: String,
    session: Session,
}

thread_local! {
    /// The module this process loaded and initialized (once: a second C_Initialize fails).
    static MODULE: RefCell<Option<(PathBuf, Pkcs11)>> = const { RefCell::new(None) };
    /// The session with the token, reused for every later load of the keys.
    static TOKEN: RefCell<Option<Rc<OpenToken>>> = const { RefCell::new(None) };
}

fn token_error(token: &str, what: &str, e: CkError) -> Error {
    let why = match &e {
        CkError::Pkcs11(RvError::PinIncorrect, _) => "the PIN is wrong".to_string(),
        CkError::Pkcs11(RvError::PinLocked, _) => "the PIN is locked".to_string(),
        CkError::Pkcs11(RvError::TokenNotPresent, _) => "the token is not present".to_string(),
        CkError::Pkcs11(RvError::DeviceRemoved, _) | CkError::Pkcs11(RvError::DeviceError, _) => {
            "the device failed or was removed".to_string()
        }
        other => other.to_string(),
    };
    Error::Token(format!("PKCS#11 token \"{token}\": {what}: {why}"))
}

fn module(path: &Path) -> Result<Pkcs11> {
    MODULE.with(|m| {
        let mut m = m.borrow_mut();
        if let Some((loaded, ctx)) = &*m {
            if loaded == path {
                return Ok(ctx.clone());
            }
            return Err(Error::Token(format!(
                "this process already uses the PKCS#11 module \"{}\"; a changed \
                 encml.master_key_pkcs11_module takes effect in new sessions",
                loaded.display()
            )));
        }
        let ctx = Pkcs11::new(path).map_err(|e| {
            Error::Token(format!(
                "could not load the PKCS#11 module \"{}\": {e}",
                path.display()
            ))
        })?;
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .or_else(|e| match e {
                CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _) => Ok(()),
                e => Err(Error::Token(format!(
                    "could not initialize the PKCS#11 module \"{}\": {e}",
                    path.display()
                ))),
            })?;
        *m = Some((path.to_path_buf(), ctx.clone()));
        Ok(ctx)
    })
}

fn open_token(cfg: &TokenConfig) -> Result<Rc<OpenToken>> {
    if let Some(t) = TOKEN.with(|t| t.borrow().clone()) {
        if t.label == cfg.token_label {
            return Ok(t);
        }
    }
    let ctx = module(cfg.module)?;
    let label = cfg.token_label;
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| token_error(label, "listing the slots", e))?;
    let slot = slots
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|i| i.label() == label)
                .unwrap_or(false)
        })
        .ok_or_else(|| {
            Error::Token(format!(
                "PKCS#11 token \"{label}\": no token with that label is present in module \"{}\"",
                cfg.module.display()
            ))
        })?;
    let session = ctx
        .open_ro_session(slot)
        .map_err(|e| token_error(label, "opening a session", e))?;
    let pin = AuthPin::new(cfg.pin.as_str().into());
    session
        .login(UserType::User, Some(&pin))
        .or_else(|e| match e {
            CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _) => Ok(()),
            e => Err(token_error(label, "logging in", e)),
        })?;
    let t = Rc::new(OpenToken {
        label: label.to_string(),
        session,
    });
    TOKEN.with(|slot| *slot.borrow_mut() = Some(t.clone()));
    Ok(t)
}

/// Forgets this process's session, so that the next load opens a new one (after the token
/// failed, for example).
pub fn close() {
    TOKEN.with(|t| t.borrow_mut().take());
}

/// One AES key in the token.
struct Pkcs11Key {
    token: Rc<OpenToken>,
    label: String,
    handle: ObjectHandle,
}

impl Pkcs11Key {
    fn gcm<R>(
        &self,
        iv: &[u8; 12],
        aad: &[u8],
        f: impl FnOnce(&Session, &Mechanism, ObjectHandle) -> cryptoki::error::Result<R>,
    ) -> cryptoki::error::Result<R> {
        let mut iv = *iv;
        let params = GcmParams::new(&mut iv, aad, 128.into())?;
        f(&self.token.session, &Mechanism::AesGcm(params), self.handle)
    }
}

impl TokenKey for Pkcs11Key {
    fn describe(&self) -> String {
        format!(
            "PKCS#11 token \"{}\", key \"{}\"",
            self.token.label, self.label
        )
    }

    fn seal(&self, iv: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        self.gcm(iv, aad, |s, m, k| s.encrypt(m, k, plaintext))
            .map_err(|e| {
                token_error(
                    &self.token.label,
                    &format!("encrypting with key \"{}\"", self.label),
                    e,
                )
            })
    }

    fn open(
        &self,
        iv: &[u8; 12],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        match self.gcm(iv, aad, |s, m, k| s.decrypt(m, k, ciphertext_and_tag)) {
            Ok(plain) => Ok(Zeroizing::new(plain)),
            // What a token reports for a tag that does not verify varies (SoftHSM2:
            // CKR_GENERAL_ERROR; others CKR_ENCRYPTED_DATA_INVALID): every decryption failure
            // is treated as a wrong key or tampered data, except a token that is gone.
            Err(CkError::Pkcs11(
                rv @ (RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::KeyHandleInvalid),
                f,
            )) => Err(token_error(
                &self.token.label,
                &format!("decrypting with key \"{}\"", self.label),
                CkError::Pkcs11(rv, f),
            )),
            Err(_) => Err(Error::AuthenticationFailed),
        }
    }
}

fn find_key(token: &Rc<OpenToken>, label: &str) -> Result<ObjectHandle> {
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    let found = token
        .session
        .find_objects(&template)
        .map_err(|e| token_error(&token.label, &format!("finding key \"{label}\""), e))?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::Token(format!(
            "PKCS#11 token \"{}\": no AES key labelled \"{label}\"",
            token.label
        ))),
        _ => Err(Error::Token(format!(
            "PKCS#11 token \"{}\": {} AES keys are labelled \"{label}\"; labels must be unique",
            token.label,
            found.len()
        ))),
    }
}

/// The master keys in the token, in the order of `key_labels` (the first is current).
pub fn master_keys(cfg: &TokenConfig) -> Result<Vec<MasterKey>> {
    if cfg.key_labels.is_empty() {
        return Err(Error::Token(format!(
            "PKCS#11 token \"{}\": no key label is configured",
            cfg.token_label
        )));
    }
    let load = || -> Result<Vec<MasterKey>> {
        let token = open_token(cfg)?;
        cfg.key_labels
            .iter()
            .map(|label| {
                let handle = find_key(&token, label)?;
                MasterKey::from_token(Box::new(Pkcs11Key {
                    token: token.clone(),
                    label: label.clone(),
                    handle,
                }))
            })
            .collect()
    };
    load().or_else(|first| {
        // A session the token dropped (restarted, or closed after an error): one new session.
        let had_session = TOKEN.with(|t| t.borrow().is_some());
        if !had_session {
            return Err(first);
        }
        close();
        load()
    })
}
