//! Money and prices as integers. A price per unit-hour is held in micro-yuan
//! (10^-6 yuan): list prices like 0.35 yuan per core-hour are exact, and sums
//! over millions of unit-hours stay far inside `i64`. The placement engine
//! works in `f64` (FORMAT.md fixes that); conversion happens only at its door.

use crate::FieldError;

pub const MICRO_PER_YUAN: i64 = 1_000_000;
/// A price above this per unit-hour is a typo, not a bid.
pub const PRICE_YUAN_PER_UNIT_HOUR_MAX: f64 = 1_000_000.0;

/// Converts a price in yuan to micro-yuan, rounded to nearest; rejects
/// what is not a finite number in [0, `PRICE_YUAN_PER_UNIT_HOUR_MAX`].
/// Finer prices round rather than fail: JSON has no decimal type, so a
/// schema cannot say "six decimals" of a binary float, and a client may
/// well send `0.1 + 0.2`.
pub fn micro_yuan(field: &str, yuan: f64) -> Result<i64, FieldError> {
    if !yuan.is_finite() || yuan < 0.0 {
        return Err(FieldError::new(field, "must be a finite number >= 0"));
    }
    if yuan > PRICE_YUAN_PER_UNIT_HOUR_MAX {
        return Err(FieldError::new(
            field,
            format!("must be at most {PRICE_YUAN_PER_UNIT_HOUR_MAX} yuan"),
        ));
    }
    // At most 10^12: exact in an f64 and far inside i64.
    Ok((yuan * MICRO_PER_YUAN as f64).round() as i64)
}

pub fn yuan(micro: i64) -> f64 {
    micro as f64 / MICRO_PER_YUAN as f64
}

/// Parses an amount of yuan written as a decimal (`100`, `12.5`,
/// `0.000001`) into micro-yuan exactly: no float, at most six decimals.
pub fn parse_yuan(field: &str, text: &str) -> Result<i64, FieldError> {
    let bad = || {
        FieldError::new(
            field,
            format!("{text:?} is not an amount of yuan (e.g. 100 or 12.5, at most 6 decimals)"),
        )
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || whole.len() > 12 || fraction.len() > 6 {
        return Err(bad());
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if text.ends_with('.') {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let fraction: i64 = format!("{fraction:0<6}").parse().map_err(|_| bad())?;
    Ok(whole * MICRO_PER_YUAN + fraction)
}

/// Micro-yuan as yuan with up to six decimals, trailing zeros trimmed
/// (`2.5`, `0.000001`, `12`): exact, for messages.
pub fn yuan_text(micro: i64) -> String {
    let sign = if micro < 0 { "-" } else { "" };
    let micro = micro.unsigned_abs();
    let text = format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{sign}{text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_parse_exactly() {
        assert_eq!(parse_yuan("a", "100").unwrap(), 100_000_000);
        assert_eq!(parse_yuan("a", "12.5").unwrap(), 12_500_000);
        assert_eq!(parse_yuan("a", "0.000001").unwrap(), 1);
        for bad in [
            "",
            "-1",
            "1.",
            ".5",
            "1.0000001",
            "1e3",
            "1,5",
            "9999999999999",
        ] {
            assert_eq!(
                parse_yuan("amount", bad).unwrap_err().field,
                "amount",
                "{bad}"
            );
        }
    }

    #[test]
    fn yuan_text_is_exact() {
        assert_eq!(yuan_text(2_500_000), "2.5");
        assert_eq!(yuan_text(1), "0.000001");
        assert_eq!(yuan_text(0), "0");
        assert_eq!(yuan_text(-1_200_000), "-1.2");
        assert_eq!(yuan_text(12_000_000), "12");
    }

    #[test]
    fn exact_round_trip() {
        for (text, micro) in [(0.35, 350_000), (2.5, 2_500_000), (0.000001, 1), (0.0, 0)] {
            assert_eq!(micro_yuan("p", text).unwrap(), micro);
            assert_eq!(yuan(micro).to_bits(), text.to_bits(), "exact");
        }
        assert!(micro_yuan("p", -1.0).is_err());
        assert!(micro_yuan("p", f64::NAN).is_err());
        assert_eq!(micro_yuan("p", 0.0000001).unwrap(), 0);
        assert_eq!(micro_yuan("p", 0.1 + 0.2).unwrap(), 300_000);
        assert_eq!(micro_yuan("p", 2046.920537047248).unwrap(), 2_046_920_537);
        assert_eq!(micro_yuan("x.y", 1e9).unwrap_err().field, "x.y");
    }
}
