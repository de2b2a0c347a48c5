//! `storage_size`: a Kubernetes resource quantity (`1Gi`, `1536Mi`, `2e9`, `1.5Ti`) of at
//! least 1 GiB, parsed with the grammar of `k8s.io/apimachinery/pkg/api/resource` so that
//! every value FrameDB accepts is one the API server accepts too.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::invalid::Invalid;

type Result<T, E = Invalid> = std::result::Result<T, E>;

const GIB: u128 = 1 << 30;
/// Smallest volume FrameDB provisions: PD, TiKV and TiDB together need at least this.
const MIN_BYTES: u128 = GIB;
/// Largest volume accepted; larger requests are typing mistakes, not databases.
const MAX_BYTES: u128 = 1 << 50;
/// Longest quantity string; real ones are a handful of characters.
const MAX_LEN: usize = 32;

/// A validated volume size: the caller's spelling, kept as given, and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StorageSize {
    text: String,
    bytes: u64,
}

impl StorageSize {
    /// Parses a Kubernetes quantity and checks it lies in 1Gi..=1Pi.
    ///
    /// # Errors
    /// [`Invalid`] when `value` is not a quantity or is out of range.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let text = value.into();
        let bytes = parse_bytes(&text).ok_or_else(|| {
            Invalid::new(format!(
                "storage_size must be a Kubernetes quantity such as '1Gi', '1536Mi' or '2Ti' \
                 (got {})",
                echo(&text)
            ))
        })?;
        if !(MIN_BYTES..=MAX_BYTES).contains(&bytes) {
            return Err(Invalid::new(format!(
                "storage_size must be at least 1Gi and at most 1Pi (got '{text}')"
            )));
        }
        let bytes = u64::try_from(bytes).expect("at most 1Pi fits in u64");
        Ok(Self { text, bytes })
    }

    /// The quantity as the caller wrote it, which is what Kubernetes objects carry.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The size in bytes, rounded up as Kubernetes rounds fractional quantities.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl TryFrom<String> for StorageSize {
    type Error = Invalid;
    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<StorageSize> for String {
    fn from(value: StorageSize) -> Self {
        value.text
    }
}

impl fmt::Display for StorageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn echo(text: &str) -> String {
    if text.is_empty() {
        "an empty string".to_owned()
    } else if text.len() <= MAX_LEN && !text.chars().any(char::is_control) {
        format!("'{text}'")
    } else {
        format!("{} characters", text.chars().count())
    }
}

/// Bytes of a quantity, or `None` when `text` is not one.
///
/// Grammar: `[+-]digits[.digits]` or `[+-].digits`, then a suffix: a binary SI one
/// (`Ki`..`Ei`), a decimal SI one (`m`, none, `k`, `M`..`E`) or a decimal exponent
/// (`e`/`E` followed by a signed integer). Negative values parse here and are rejected by
/// the range check.
fn parse_bytes(text: &str) -> Option<u128> {
    if text.is_empty() || text.len() > MAX_LEN {
        return None;
    }
    let (negative, rest) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    if number.ends_with('.') {
        return None;
    }
    // Exact arithmetic: value = mantissa / 10^scale * multiplier.
    let mantissa: u128 = format!("{whole}{fraction}").parse().ok()?;
    let scale = u32::try_from(fraction.len()).ok()?;
    let (numerator, denominator) = apply_suffix(mantissa, 10u128.checked_pow(scale)?, suffix)?;
    if negative && numerator != 0 {
        return Some(0);
    }
    Some(numerator.div_ceil(denominator))
}

/// Multiplies `numerator / denominator` by the suffix's factor.
fn apply_suffix(numerator: u128, denominator: u128, suffix: &str) -> Option<(u128, u128)> {
    let binary = |power: u32| Some((numerator.checked_mul(1u128 << (10 * power))?, denominator));
    let decimal = |exponent: i32| {
        let factor = 10u128.checked_pow(exponent.unsigned_abs())?;
        if exponent >= 0 {
            Some((numerator.checked_mul(factor)?, denominator))
        } else {
            Some((numerator, denominator.checked_mul(factor)?))
        }
    };
    match suffix {
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        "m" => decimal(-3),
        "" => decimal(0),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let exponent: i32 = exponent.parse().ok()?;
            if exponent.abs() > 30 {
                return None;
            }
            decimal(exponent)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities() {
        let cases = [
            ("1Gi", GIB),
            ("2Gi", 2 * GIB),
            ("1536Mi", 1536 << 20),
            ("1Ti", 1 << 40),
            ("1.5Gi", 3 * GIB / 2),
            ("1048576Ki", GIB),
            ("2G", 2_000_000_000),
            ("2e9", 2_000_000_000),
            ("2E9", 2_000_000_000),
            ("+2Gi", 2 * GIB),
            ("1073741824", GIB),
            ("1073741824000m", GIB),
            (".5Ti", 1 << 39),
            ("1Pi", 1 << 50),
        ];
        for (text, bytes) in cases {
            let size = StorageSize::new(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(u128::from(size.bytes()), bytes, "{text}");
            assert_eq!(size.as_str(), text);
        }
    }

    #[test]
    fn rejects_what_is_not_a_quantity() {
        for bad in [
            "", "Gi", "2 Gi", "2gi", "2GB", "2Gib", "two", "1..5Gi", "1.Gi", "2Gi ", " 2Gi",
            "0x10Gi", "1e", "1e+", "2Zi", "1e99", "--2Gi",
        ] {
            let err = StorageSize::new(bad).unwrap_err().to_string();
            assert!(err.contains("Kubernetes quantity"), "{bad}: {err}");
        }
    }

    #[test]
    fn rejects_sizes_out_of_range() {
        for bad in ["1023Mi", "1G", "0", "-2Gi", "2Pi", "1Ei"] {
            let err = StorageSize::new(bad).unwrap_err().to_string();
            assert!(err.contains("at least 1Gi"), "{bad}: {err}");
        }
    }

    #[test]
    fn round_trips_as_a_string() {
        let size: StorageSize = serde_json::from_str("\"1536Mi\"").unwrap();
        assert_eq!(serde_json::to_string(&size).unwrap(), "\"1536Mi\"");
        assert!(serde_json::from_str::<StorageSize>("\"1Mi\"").is_err());
        assert!(serde_json::from_str::<StorageSize>("2").is_err());
    }
}
