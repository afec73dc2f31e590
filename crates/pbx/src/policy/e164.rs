//! Dialled numbers to E.164, and the ITU country calling code of an E.164 number.

/// How numbers are dialled in the PBX's country (E.164 settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberPlan {
    /// The home country calling code, e.g. "1", "44", "49".
    pub country_code: String,
    /// The international call prefix, e.g. "00" or "011".
    pub international_prefix: String,
    /// The national (trunk) prefix, e.g. "0" or "1"; may be empty.
    pub national_prefix: String,
}

impl NumberPlan {
    /// The E.164 digits (no `+`) of a dialled number: `+…` and the international prefix give the number as is;
    /// the national prefix is replaced by the home country code; anything else is taken as a national number
    /// without prefix. `None` for something that is not a phone number (letters, empty).
    pub fn to_e164(&self, dialed: &str) -> Option<String> {
        let d = dialed.trim();
        if let Some(rest) = d.strip_prefix('+') {
            return digits(rest);
        }
        let d = digits(d)?;
        if !self.international_prefix.is_empty()
            && let Some(rest) = d.strip_prefix(&self.international_prefix)
        {
            return (!rest.is_empty()).then(|| rest.to_string());
        }
        if !self.national_prefix.is_empty()
            && let Some(rest) = d.strip_prefix(&self.national_prefix)
        {
            return Some(format!("{}{rest}", self.country_code));
        }
        Some(format!("{}{d}", self.country_code))
    }
}

fn digits(s: &str) -> Option<String> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.to_string())
}

/// The two-digit ITU-T E.164 country calling codes. With "1" and "7" they are the only codes shorter than three
/// digits, and the code set is prefix-free, so every other number's code is its first three digits.
const TWO_DIGIT_CODES: [&str; 44] = [
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47",
    "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65",
    "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
];

/// The country calling code of an E.164 number (digits only, no `+`).
pub fn country_code(e164: &str) -> Option<&str> {
    // No country calling code starts with 0: such a number is malformed (e.g. one international prefix too many).
    if e164.is_empty() || e164.starts_with('0') || !e164.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if e164.starts_with('1') || e164.starts_with('7') {
        return Some(&e164[..1]);
    }
    if e164.len() >= 2 && TWO_DIGIT_CODES.contains(&&e164[..2]) {
        return Some(&e164[..2]);
    }
    (e164.len() >= 3).then(|| &e164[..3])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn de() -> NumberPlan {
        NumberPlan {
            country_code: "49".into(),
            international_prefix: "00".into(),
            national_prefix: "0".into(),
        }
    }

    fn us() -> NumberPlan {
        NumberPlan {
            country_code: "1".into(),
            international_prefix: "011".into(),
            national_prefix: "1".into(),
        }
    }

    #[test]
    fn normalisation() {
        assert_eq!(de().to_e164("0301234567").as_deref(), Some("49301234567"));
        assert_eq!(
            de().to_e164("0044207946000").as_deref(),
            Some("44207946000")
        );
        assert_eq!(
            de().to_e164("+252611234567").as_deref(),
            Some("252611234567")
        );
        assert_eq!(
            us().to_e164("01144207946000").as_deref(),
            Some("44207946000")
        );
        assert_eq!(us().to_e164("12125551234").as_deref(), Some("12125551234"));
        assert_eq!(us().to_e164("2125551234").as_deref(), Some("12125551234"));
        assert_eq!(de().to_e164("12ab"), None);
        assert_eq!(de().to_e164("00"), None);
    }

    #[test]
    fn country_codes() {
        assert_eq!(country_code("12125551234"), Some("1"));
        assert_eq!(country_code("74951234567"), Some("7"));
        assert_eq!(country_code("44207946000"), Some("44"));
        assert_eq!(country_code("49301234567"), Some("49"));
        assert_eq!(
            country_code("252611234567"),
            Some("252"),
            "Somalia: a premium-fraud favourite"
        );
        assert_eq!(
            country_code("8823456789"),
            Some("882"),
            "international networks"
        );
        assert_eq!(country_code("x"), None);
        assert_eq!(country_code("0252611234567"), None, "no code starts with 0");
    }
}
