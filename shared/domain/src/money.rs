//! Money: integer cents in the domain and the database (`price_cents BIGINT`), a decimal
//! number with at most two decimals in the API (`"price": 299.99`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount in the event's currency, in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cents(pub i64);

impl Cents {
    /// The largest price the API accepts: 1 000 000.00.
    pub const MAX: Cents = Cents(100_000_000);

    /// A price as the API writes it: a number from 0 to 1 000 000 with at most two
    /// decimals (binary floating point noise such as `0.1 + 0.2` is tolerated).
    pub fn from_decimal(price: f64) -> Result<Cents, &'static str> {
        if !price.is_finite() || !(0.0..=1_000_000.0).contains(&price) {
            return Err("must be between 0 and 1000000");
        }
        let cents = price * 100.0;
        if (cents - cents.round()).abs() > 1e-6 {
            return Err("must have at most 2 decimals");
        }
        Ok(Cents(cents.round() as i64))
    }

    /// The amount as the API writes it.
    pub fn as_decimal(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl Serialize for Cents {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_decimal())
    }
}

impl<'de> Deserialize<'de> for Cents {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Cents::from_decimal(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_cents() {
        assert_eq!(Cents::from_decimal(299.99), Ok(Cents(29999)));
        assert_eq!(Cents::from_decimal(0.1 + 0.2), Ok(Cents(30)));
        assert_eq!(Cents::from_decimal(1_000_000.0), Ok(Cents::MAX));
        assert!(Cents::from_decimal(1.234).is_err());
        assert!(Cents::from_decimal(-1.0).is_err());
        assert!(Cents::from_decimal(f64::NAN).is_err());
        assert!(Cents::from_decimal(1_000_000.01).is_err());
        assert_eq!(Cents(29999).as_decimal(), 299.99);
        assert_eq!(serde_json::to_string(&Cents(100)).unwrap(), "1.0");
        assert_eq!(serde_json::from_str::<Cents>("12.5").unwrap(), Cents(1250));
        assert!(serde_json::from_str::<Cents>("12.345").is_err());
    }
}
