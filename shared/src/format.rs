//! How the page writes numbers: money with thousands separators, short money labels, clock
//! times. Pure, tested natively.

use crate::money::Money;

/// `1234567` minor units → `"12,345.67"`.
pub fn format_money(m: Money) -> String {
    let s = m.to_string();
    let (sign, rest) = s.strip_prefix('-').map(|r| ("-", r)).unwrap_or(("", &s));
    let (whole, cents) = rest.split_once('.').unwrap_or((rest, "00"));
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}.{cents}")
}

/// A bar's label: like [`format_money`], without a `.00` on whole amounts.
pub fn money_label(minor: i64) -> String {
    let s = format_money(Money::from_minor(minor));
    s.strip_suffix(".00").map(str::to_owned).unwrap_or(s)
}

/// hh:mm:ss (UTC) of a time in ms since the epoch.
pub fn clock(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_times_read_well() {
        assert_eq!(format_money(Money::from_minor(123_456_789)), "1,234,567.89");
        assert_eq!(format_money(Money::from_minor(-5)), "-0.05");
        assert_eq!(money_label(12_300), "123");
        assert_eq!(money_label(-12_345), "-123.45");
        assert_eq!(clock(3_723_000), "01:02:03");
        assert_eq!(clock(86_400_000 + 1_000), "00:00:01");
    }
}
