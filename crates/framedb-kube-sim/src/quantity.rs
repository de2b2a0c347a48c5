//! Resource quantities (`500m`, `2`, `1.5Gi`, `1e9`), read as the scheduler compares
//! them: CPU in millicores, everything else in whole units, both rounded up as
//! Kubernetes' `Quantity.MilliValue` and `Quantity.Value` round.

/// `text` scaled by `scale` (1000 for millicores, 1 for bytes), rounded up; `None` when
/// it is not a quantity.
pub(crate) fn parse_scaled(text: &str, scale: u128) -> Option<u128> {
    let text = text.trim();
    let (number, multiplier) = split_suffix(text)?;
    // The number as an integer mantissa and a power of ten, so that "0.5" stays exact.
    let (mantissa, exponent) = decimal(number)?;
    let mut numerator = mantissa
        .checked_mul(multiplier.numerator)?
        .checked_mul(scale)?;
    let mut denominator = multiplier.denominator;
    if exponent >= 0 {
        numerator = numerator.checked_mul(10u128.checked_pow(exponent.unsigned_abs())?)?;
    } else {
        denominator = denominator.checked_mul(10u128.checked_pow(exponent.unsigned_abs())?)?;
    }
    Some(numerator.div_ceil(denominator))
}

/// CPU in millicores.
pub(crate) fn millicores(text: &str) -> Option<u128> {
    parse_scaled(text, 1000)
}

/// Memory (or any count) in whole units.
pub(crate) fn units(text: &str) -> Option<u128> {
    parse_scaled(text, 1)
}

struct Multiplier {
    numerator: u128,
    denominator: u128,
}

/// The number and what its suffix multiplies it by.
fn split_suffix(text: &str) -> Option<(&str, Multiplier)> {
    const BINARY: [(&str, u32); 6] = [
        ("Ki", 1),
        ("Mi", 2),
        ("Gi", 3),
        ("Ti", 4),
        ("Pi", 5),
        ("Ei", 6),
    ];
    const DECIMAL: [(&str, u32); 6] = [("k", 1), ("M", 2), ("G", 3), ("T", 4), ("P", 5), ("E", 6)];
    let times = |numerator| Multiplier {
        numerator,
        denominator: 1,
    };
    for (suffix, power) in BINARY {
        if let Some(number) = text.strip_suffix(suffix) {
            return Some((number, times(1024u128.pow(power))));
        }
    }
    if let Some(number) = text.strip_suffix('m') {
        let thousandth = Multiplier {
            numerator: 1,
            denominator: 1000,
        };
        return Some((number, thousandth));
    }
    if let Some(number) = text.strip_suffix('n') {
        let billionth = Multiplier {
            numerator: 1,
            denominator: 1_000_000_000,
        };
        return Some((number, billionth));
    }
    if let Some(number) = text.strip_suffix('u') {
        let millionth = Multiplier {
            numerator: 1,
            denominator: 1_000_000,
        };
        return Some((number, millionth));
    }
    for (suffix, power) in DECIMAL {
        if let Some(number) = text.strip_suffix(suffix) {
            return Some((number, times(1000u128.pow(power))));
        }
    }
    Some((text, times(1)))
}

/// `"1.5"` as `(15, -1)`, `"2e3"` as `(2, 3)`.
fn decimal(number: &str) -> Option<(u128, i32)> {
    let (digits, exponent) = match number.split_once(['e', 'E']) {
        Some((digits, exponent)) => (digits, exponent.parse::<i32>().ok()?),
        None => (number, 0),
    };
    let digits = digits.strip_prefix('+').unwrap_or(digits);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
        || fraction.len() > 18
    {
        return None;
    }
    let mantissa: u128 = format!("{whole}{fraction}").parse().ok()?;
    Some((mantissa, exponent - i32::try_from(fraction.len()).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_as_kubernetes_rounds_them() {
        assert_eq!(millicores("500m"), Some(500));
        assert_eq!(millicores("2"), Some(2000));
        assert_eq!(millicores("0.5"), Some(500));
        assert_eq!(millicores("1.0001"), Some(1001), "rounded up");
        assert_eq!(units("1Gi"), Some(1 << 30));
        assert_eq!(units("512Mi"), Some(512 << 20));
        assert_eq!(units("1G"), Some(1_000_000_000));
        assert_eq!(units("1e9"), Some(1_000_000_000));
        assert_eq!(units("1.5Gi"), Some(3 << 29));
        assert_eq!(units("100m"), Some(1), "a tenth of a byte is a byte");
        assert_eq!(units("128974848"), Some(128_974_848));
        for bad in ["", "Gi", "1.2.3", "-1", "1x", "e3"] {
            assert_eq!(units(bad), None, "{bad}");
        }
    }
}
