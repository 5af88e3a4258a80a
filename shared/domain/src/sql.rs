//! How domain types meet PostgreSQL.

/// An enum stored as `TEXT` (each column has a `CHECK` listing the same words): `as_str`,
/// `parse` and the tokio-postgres conversions, generated from one list, so a status is read
/// from a row and bound to a statement as itself, never compared as a string.
#[macro_export]
macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The word stored in the database and sent in the API.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text,)+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($ty::$variant),)+
                    _ => None,
                }
            }
        }

        impl<'a> tokio_postgres::types::FromSql<'a> for $ty {
            fn from_sql(
                ty: &tokio_postgres::types::Type,
                raw: &'a [u8],
            ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
                let s = <&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
                Self::parse(s).ok_or_else(|| {
                    format!(concat!("not a ", stringify!($ty), ": {:?}"), s).into()
                })
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::FromSql>::accepts(ty)
            }
        }

        impl tokio_postgres::types::ToSql for $ty {
            fn to_sql(
                &self,
                ty: &tokio_postgres::types::Type,
                out: &mut $crate::sql::BytesMut,
            ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
                <&str as tokio_postgres::types::ToSql>::to_sql(&self.as_str(), ty, out)
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::ToSql>::accepts(ty)
            }

            tokio_postgres::types::to_sql_checked!();
        }
    };
}

pub use bytes::BytesMut;

/// A column read as its domain type; a value the type does not know is an internal error
/// (the schema's `CHECK` constraints keep that from happening), never a panic.
pub fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    column: &str,
) -> crate::DomainResult<T> {
    row.try_get(column)
        .map_err(|e| crate::DomainError::internal(format!("column {column}: {e}")))
}

#[cfg(test)]
mod tests {
    use crate::events::EventStatus;
    use crate::guests::GuestStatus;
    use crate::tickets::checkin::ScanResult;
    use crate::tickets::TicketStatus;

    #[test]
    fn every_stored_word_reads_back_as_its_value() {
        for s in EventStatus::ALL {
            assert_eq!(EventStatus::parse(s.as_str()), Some(*s));
        }
        for s in GuestStatus::ALL {
            assert_eq!(GuestStatus::parse(s.as_str()), Some(*s));
        }
        for s in TicketStatus::ALL {
            assert_eq!(TicketStatus::parse(s.as_str()), Some(*s));
        }
        for s in ScanResult::ALL {
            assert_eq!(ScanResult::parse(s.as_str()), Some(*s));
        }
        assert_eq!(GuestStatus::CheckedIn.as_str(), "checked_in");
        assert_eq!(EventStatus::parse("Published"), None);
    }

    /// The serde names (what the API sends) are the stored words.
    #[test]
    fn api_words_are_the_stored_words() {
        for s in EventStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in GuestStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in TicketStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
