//! The consumer protocol's member assignment (what a group leader gave each member), as the
//! broker returns it in DescribeGroups: version (i16), then per topic its name (i16 length +
//! UTF-8) and partitions (i32 count + i32 each), then user data (ignored). Pure, so it is
//! tested here and never trusts a length it is given.

use std::collections::BTreeMap;

/// Partitions per topic; `None` if the bytes are not a consumer-protocol assignment.
pub fn parse(bytes: &[u8]) -> Option<BTreeMap<String, Vec<i32>>> {
    let mut r = Reader { bytes, at: 0 };
    let _version = r.i16()?;
    let topics = r.i32()?;
    if topics < 0 {
        return Some(BTreeMap::new());
    }
    let mut out = BTreeMap::new();
    for _ in 0..topics {
        let len = usize::try_from(r.i16()?).ok()?;
        let name = std::str::from_utf8(r.take(len)?).ok()?.to_owned();
        let n = r.i32()?;
        // Each partition is 4 bytes: a count larger than what is left is a lie.
        let n = usize::try_from(n).ok().filter(|n| *n <= r.left() / 4)?;
        let mut partitions = Vec::with_capacity(n);
        for _ in 0..n {
            partitions.push(r.i32()?);
        }
        out.insert(name, partitions);
    }
    Some(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = vec![0, 1];
        b.extend((topics.len() as i32).to_be_bytes());
        for (name, parts) in topics {
            b.extend((name.len() as i16).to_be_bytes());
            b.extend(name.as_bytes());
            b.extend((parts.len() as i32).to_be_bytes());
            for p in *parts {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend((-1i32).to_be_bytes()); // no user data
        b
    }

    #[test]
    fn reads_what_a_group_leader_writes() {
        let a = parse(&encode(&[("transactions", &[0, 3, 5]), ("other", &[])])).unwrap();
        assert_eq!(a["transactions"], vec![0, 3, 5]);
        assert_eq!(a["other"], Vec::<i32>::new());
    }

    #[test]
    fn refuses_lies() {
        assert_eq!(parse(&[]), None);
        assert_eq!(
            parse(&[0, 1, 0, 0, 0, 1, 0, 50, b'x']),
            None,
            "name longer than the bytes"
        );
        let mut huge = encode(&[("t", &[])]);
        huge[9..13].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(
            parse(&huge),
            None,
            "a partition count larger than the bytes"
        );
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse(&bytes);
        }
    }
}
