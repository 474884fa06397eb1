use super::*;

// -------------------------------------------------------------------------------------------------
// Ticket numbers and timestamps: what src/ticket_number.rs and src/timestamp.rs do not cover
// -------------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(1500))]

    /// The unit tests join with bare commas; an operator types blanks too. An empty item
    /// anywhere (a doubled or trailing comma, a blank item) is a typo, refused naming the value.
    #[test]
    fn skip_lists_round_trip_with_blanks_and_refuse_empty_items(
        items in prop::collection::vec(
            ("[ \t]{0,2}", "[A-Za-z0-9._/-]{1,64}", "[ \t]{0,2}"),
            1..12,
        ),
        empty_at in any::<prop::sample::Index>(),
        blank in "[ \t]{0,2}",
    ) {
        let texts: Vec<String> = items.iter().map(|(before, number, after)| format!("{before}{number}{after}")).collect();
        let numbers: Vec<&str> = items.iter().map(|(_, n, _)| n.as_str()).collect();
        prop_assert_eq!(ticket_number::parse_list(&texts.join(",")), Ok(numbers.iter().map(|n| n.to_string()).collect()));
        // And back: the list joined again parses to itself.
        prop_assert_eq!(ticket_number::parse_list(&numbers.join(", ")).unwrap(), numbers);
        let mut with_empty = texts.clone();
        with_empty.insert(empty_at.index(texts.len() + 1), blank);
        let text = with_empty.join(",");
        let refused = ticket_number::parse_list(&text).unwrap_err();
        prop_assert!(refused.contains(&format!("{text:?}")), "{}", refused);
    }

    #[test]
    fn parse_list_never_panics_and_fails_only_on_a_bad_item(text in "\\PC{0,60}|[A-Za-z0-9, ]{0,40}") {
        let bad = text.split(',').map(str::trim).find(|i| !ticket_number::is_valid(i));
        match ticket_number::parse_list(&text) {
            Ok(numbers) => {
                prop_assert_eq!(bad, None);
                prop_assert!(numbers.iter().all(|n| ticket_number::is_valid(n)));
            }
            Err(message) => {
                prop_assert!(bad.is_some(), "{:?} refused: {}", text, message);
                prop_assert!(message.starts_with("invalid ticket number"), "{}", message);
            }
        }
    }

    /// Any RFC 3339 text (offsets, fractions, separators, impossible dates) against a
    /// day-by-day count that shares no code with the parser.
    #[test]
    fn rfc3339_texts_parse_to_the_instant_they_name(
        year in prop_oneof![0i64..3, 1965i64..2045, 9997i64..=9999],
        month in 1i64..=12,
        day in 1i64..=31,
        (hour, minute, second) in (0i64..24, 0i64..60, 0i64..=60),
        fraction in "[0-9]{0,7}",
        separator in prop::sample::select(&["T", "t", " "][..]),
        offset in prop_oneof![
            Just(None),
            (prop::bool::ANY, 0i64..24, 0i64..60).prop_map(Some),
        ],
        lower_z in any::<bool>(),
    ) {
        let zone = match offset {
            None => (if lower_z { "z" } else { "Z" }).to_owned(),
            Some((minus, h, m)) => format!("{}{h:02}:{m:02}", if minus { '-' } else { '+' }),
        };
        let dot = if fraction.is_empty() { String::new() } else { format!(".{fraction}") };
        let text = format!(
            "{year:04}-{month:02}-{day:02}{separator}{hour:02}:{minute:02}:{second:02}{dot}{zone}"
        );
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let date_valid = day <= month_days[(month - 1) as usize];
        // Days from 0000-01-01, counted year by year and month by month.
        let mut days = 0i64;
        for y in 0..year {
            days += if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) { 366 } else { 365 };
        }
        days += month_days[..(month - 1) as usize].iter().sum::<i64>() + day - 1;
        let offset_seconds = offset.map_or(0, |(minus, h, m)| (h * 60 + m) * 60 * if minus { -1 } else { 1 });
        let millis_of_second: i64 = format!("{fraction:0<3}")[..3].parse().unwrap();
        let since_year_zero =
            (days * 86_400 + hour * 3_600 + minute * 60 + second - offset_seconds) * 1000 + millis_of_second;
        const YEAR_10000: i64 = 315_569_520_000_000; // 3_652_425 days
        let in_range = (0..YEAR_10000).contains(&since_year_zero);
        let parsed = Timestamp::parse_rfc3339(&text);
        prop_assert_eq!(parsed.is_some(), date_valid && in_range, "{}", text);
        if let Some(t) = parsed {
            let zero = Timestamp::parse_rfc3339("0000-01-01T00:00:00Z").unwrap();
            prop_assert_eq!(t.millis_since(zero), since_year_zero, "{}", text);
            // The normal form names the same instant and is a fixed point.
            let normal = t.to_string();
            prop_assert_eq!(normal.len(), 24);
            prop_assert_eq!(Timestamp::parse_rfc3339(&normal), Some(t));
        }
    }
}
