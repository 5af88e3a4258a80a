//! Optimistic concurrency: `ETag` and `If-Match` on events, ticket types, guests and check-in
//! lists.
//!
//! The version is the row's `xmin`: the id of the transaction that wrote the row's current
//! version. Every update writes a new row version, so it changes with every change, costs no
//! column, no trigger and no write; and since PostgreSQL 9.4 freezing keeps it. The ETag is
//! `"<xmin>"`. A command that honours `If-Match` compares it with the version of the row it has
//! locked (`FOR UPDATE`), inside its transaction: of two writers holding the same ETag, the
//! second finds a new version once the first commits, and gets 412.

use crate::error::{DomainError, DomainResult, ErrorCode};

/// The select expression of a row's version (`alias.xmin`).
pub fn column(alias: &str) -> String {
    format!("{alias}.xmin::text AS version")
}

/// The ETag of a version.
pub fn etag(version: &str) -> String {
    format!("\"{version}\"")
}

/// `If-Match` against the current version: no header (no check), `*`, or a list of entity tags
/// one of which is the current one (strong comparison: a weak tag never matches).
pub fn check(if_match: Option<&str>, version: &str) -> DomainResult<()> {
    let Some(header) = if_match else {
        return Ok(());
    };
    let current = etag(version);
    let matches = header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == current);
    if matches {
        Ok(())
    } else {
        Err(DomainError::new(
            ErrorCode::PreconditionFailed,
            "the resource changed since it was read (If-Match does not match its ETag); read it again",
        )
        .with_details(serde_json::json!({"etag": current})))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_rules() {
        assert!(check(None, "7").is_ok());
        assert!(check(Some("\"7\""), "7").is_ok());
        assert!(check(Some("*"), "7").is_ok());
        assert!(check(Some("\"6\", \"7\""), "7").is_ok());
        let e = check(Some("\"6\""), "7").unwrap_err();
        assert_eq!(e.code, ErrorCode::PreconditionFailed);
        assert!(
            check(Some("W/\"7\""), "7").is_err(),
            "weak tags never match"
        );
        assert!(check(Some("7"), "7").is_err(), "an entity tag is quoted");
    }
}
