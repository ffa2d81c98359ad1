//! Tenant tokens: `tenant_token::verify` (and `is_token`).
//!
//! Checks: a token `verify` accepts is the canonical one `issue` makes for its claims; an own
//! token for any tenant and issue time verifies (or is expired), never fails otherwise, and not
//! for another role or database.

use crate::fixtures::{self, DATABASE, NOW_US, ROLE, TOKEN_LIFETIME_US};
use encml_core::master::MasterKey;
use encml_core::tenant_token::{self, TokenError};

thread_local! {
    static KEYS: Vec<MasterKey> = fixtures::masters();
}

pub fn init() {
    KEYS.with(|_| ());
}

pub fn run(data: &[u8]) {
    KEYS.with(|keys| {
        let token = String::from_utf8_lossy(data);
        let r = tenant_token::verify(keys, &token, ROLE, DATABASE, NOW_US, TOKEN_LIFETIME_US);
        if r.is_ok() || r == Err(TokenError::Expired) || r == Err(TokenError::BadMac) {
            assert!(tenant_token::is_token(&token));
        }
        if let Ok(tenant) = &r {
            // Which key and issue time: from the token's own fields.
            let fields: Vec<&str> = token.split('.').collect();
            let issued: i64 = fields[fields.len() - 3].parse().unwrap();
            let fp = fields[fields.len() - 2];
            let key = keys.iter().find(|k| k.fingerprint() == fp).unwrap();
            assert_eq!(
                tenant_token::issue(key, tenant, ROLE, DATABASE, issued),
                token,
                "an accepted token is the canonical token of its claims"
            );
        }

        // Own tokens: issue time from the first 8 bytes, key from the 9th, tenant the rest.
        let (issued, rest) = crate::take::<8>(data);
        let issued = i64::from_le_bytes(issued);
        let (sel, tenant) = rest.split_first().map(|(&s, t)| (s, t)).unwrap_or((0, &[]));
        let tenant = String::from_utf8_lossy(tenant);
        let key = &keys[sel as usize % keys.len()];
        let t = tenant_token::issue(key, &tenant, ROLE, DATABASE, issued);
        match tenant_token::verify(keys, &t, ROLE, DATABASE, NOW_US, TOKEN_LIFETIME_US) {
            Ok(x) => {
                assert_eq!(x, tenant);
                let age = NOW_US as i128 - issued as i128;
                assert!(
                    age >= -300_000_000 && age <= TOKEN_LIFETIME_US as i128,
                    "accepted at age {age}"
                );
            }
            Err(TokenError::Expired) => {}
            // Issue times are µs since 1970, written without a sign: a negative one never parses.
            Err(TokenError::Malformed) if issued < 0 => {}
            Err(e) => panic!("own token refused: {e} ({t})"),
        }
        assert!(matches!(
            tenant_token::verify(keys, &t, "other_role", DATABASE, NOW_US, TOKEN_LIFETIME_US),
            Err(TokenError::BadMac) | Err(TokenError::Malformed)
        ));
        // Issued a moment ago: always accepted.
        let fresh = tenant_token::issue(key, &tenant, ROLE, DATABASE, NOW_US - 1);
        assert_eq!(
            tenant_token::verify(keys, &fresh, ROLE, DATABASE, NOW_US, TOKEN_LIFETIME_US).as_ref(),
            Ok(&tenant.to_string())
        );
    });
}
