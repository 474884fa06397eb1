//! S-360 ticket numbers (TIXNGO "tax numbers"): the key of the store and of the skip list.

/// The longest ticket number accepted.
pub(crate) const MAX_LEN: usize = 64;

/// Whether `number` (already trimmed) follows the grammar of SPEC §2:
/// 1..=64 characters of `A-Z a-z 0-9 - _ . /`.
pub fn is_valid(number: &str) -> bool {
    (1..=MAX_LEN).contains(&number.len())
        && number
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

/// Trims and checks one ticket number given by an operator.
pub fn parse(text: &str) -> Result<String, String> {
    let number = text.trim();
    if is_valid(number) {
        Ok(number.to_owned())
    } else {
        Err(format!(
            "invalid ticket number {text:?}: expected 1 to {MAX_LEN} characters of A-Z a-z 0-9 - _ . /"
        ))
    }
}

/// Parses a comma-separated list of ticket numbers. An empty item anywhere (`a,,b`, a trailing
/// comma, a blank list) is refused: it is a typo, and `--skip ''` skipping nothing would hide it.
pub fn parse_list(text: &str) -> Result<Vec<String>, String> {
    text.split(',')
        .map(|item| {
            if item.trim().is_empty() {
                Err(format!(
                    "invalid ticket number list {text:?}: an empty item (expected numbers separated by single commas)"
                ))
            } else {
                parse(item)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_grammar() {
        for good in ["1", "2026000123", "A-b_c.d/e", &"9".repeat(64)] {
            assert!(is_valid(good), "{good}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            " 1",
            "1 2",
            "a,b",
            "é",
            "1;DROP",
            "x\n",
            &"9".repeat(65),
        ] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn parse_trims_and_names_the_bad_value() {
        assert_eq!(parse("  T-1 ").unwrap(), "T-1");
        let err = parse("T 1").unwrap_err();
        assert!(err.contains("\"T 1\""), "{err}");
    }

    #[test]
    fn list_trims_and_fails_on_a_bad_or_empty_item() {
        assert_eq!(parse_list(" a, b ,c").unwrap(), ["a", "b", "c"]);
        for bad in [" a, b ,,c,", "", " ", ",,", "a,", ",a"] {
            let err = parse_list(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(parse_list("a,b c").is_err());
    }

    proptest! {
        #[test]
        fn list_round_trips(numbers in prop::collection::vec("[A-Za-z0-9._/-]{1,64}", 1..20)) {
            let joined = numbers.join(",");
            prop_assert_eq!(parse_list(&joined).unwrap(), numbers);
        }

        #[test]
        fn parse_never_panics_and_accepts_only_the_grammar(text in "\\PC{0,80}") {
            if let Ok(number) = parse(&text) {
                prop_assert!(is_valid(&number));
            }
        }
    }
}
