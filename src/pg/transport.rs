//! How this backend's client is connected: over TCP or a Unix socket, with TLS or GSSAPI
//! encryption or in the clear, as the backend's own status entry (`pg_stat_ssl`,
//! `pg_stat_gssapi`) records it.

use pgrx::pg_sys;

/// The transport of this backend's client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    /// Over TCP (else a Unix socket, which never leaves the machine).
    pub tcp: bool,
    /// TLS is in use.
    pub tls: bool,
    /// GSSAPI encryption is in use.
    pub gss_encrypted: bool,
}

impl Transport {
    /// Bytes cross a network unencrypted.
    pub fn plaintext_over_network(self) -> bool {
        self.tcp && !self.tls && !self.gss_encrypted
    }
}

/// This backend's transport; None in a process without a client (background workers) or before
/// its status entry exists.
pub fn current() -> Option<Transport> {
    // SAFETY: MyBEEntry is this backend's own status entry in shared memory (NULL until
    // pgstat_bestart, and in processes without one); only this backend writes it, so reading
    // it needs no changecount loop. st_gssstatus points into the same shared array and is
    // read only when st_gss says it is filled in.
    unsafe {
        let entry = pg_sys::MyBEEntry;
        if entry.is_null() || pg_sys::MyProcPort.is_null() {
            return None;
        }
        let entry = &*entry;
        let gss_encrypted =
            entry.st_gss && !entry.st_gssstatus.is_null() && (*entry.st_gssstatus).gss_enc;
        Some(Transport {
            tcp: crate::pg::client_address::current().is_some(),
            tls: entry.st_ssl,
            gss_encrypted,
        })
    }
}
