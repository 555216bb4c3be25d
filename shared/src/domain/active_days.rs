//! A member's active days (the distinct local days on which they watched a class) as one bit set,
//! kept on the member's row (`members.active_days_since`, `members.active_day_bits`): bit `i` is
//! the day `since + i`, in byte `i / 8`, bit `i % 8` counted from the least significant, as
//! Postgres's `get_bit` and `set_bit` number the bits of a `bytea`. A member who watched every day
//! for a year takes 46 bytes; a landing adds its days to the set of each member it touches with one
//! row update, whatever the days' spread.

use chrono::NaiveDate;

/// A set of days.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActiveDays {
    since: Option<NaiveDate>,
    bits: Vec<u8>,
}

impl ActiveDays {
    /// The set as stored: the day of bit 0 (`None` for the empty set) and the bits. Bits past the
    /// stored bytes, and the bits of a set without a first day, are taken as unset.
    pub fn from_stored(since: Option<NaiveDate>, bits: Vec<u8>) -> Self {
        match since {
            Some(_) => Self { since, bits },
            None => Self::default(),
        }
    }

    /// The day of bit 0, as stored.
    pub fn since(&self) -> Option<NaiveDate> {
        self.since
    }

    /// The bits, as stored.
    pub fn bits(&self) -> &[u8] {
        &self.bits
    }

    /// How many days the set holds.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|b| b.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the set holds `day`.
    pub fn contains(&self, day: NaiveDate) -> bool {
        let Some(since) = self.since else {
            return false;
        };
        let Ok(i) = usize::try_from((day - since).num_days()) else {
            return false;
        };
        self.bits
            .get(i / 8)
            .is_some_and(|b| b & (1 << (i % 8)) != 0)
    }

    /// The days of the set, in order.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        let since = self.since;
        (0..self.bits.len() * 8)
            .filter(|i| self.bits[i / 8] & (1 << (i % 8)) != 0)
            .filter_map(move |i| since?.checked_add_days(chrono::Days::new(i as u64)))
    }

    /// Adds `day`; returns whether it was new. A day before the first moves the first day back
    /// to it (the bits are laid out again).
    pub fn insert(&mut self, day: NaiveDate) -> bool {
        let since = match self.since {
            Some(since) if since <= day => since,
            Some(_) => {
                // Before the first day, so new.
                *self = std::iter::once(day).chain(self.days()).collect();
                return true;
            }
            None => {
                self.since = Some(day);
                day
            }
        };
        let i = (day - since).num_days() as usize;
        if self.bits.len() <= i / 8 {
            self.bits.resize(i / 8 + 1, 0);
        }
        let (byte, mask) = (&mut self.bits[i / 8], 1u8 << (i % 8));
        let new = *byte & mask == 0;
        *byte |= mask;
        new
    }
}

impl FromIterator<NaiveDate> for ActiveDays {
    fn from_iter<I: IntoIterator<Item = NaiveDate>>(days: I) -> Self {
        let mut set = Self::default();
        for day in days {
            set.insert(day);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn days_are_a_set_in_order_whatever_order_they_come_in() {
        let mut set = ActiveDays::default();
        assert!(set.is_empty());
        assert!(set.insert(d("2026-11-10")));
        assert!(set.insert(d("2026-11-27")));
        assert!(!set.insert(d("2026-11-10")));
        // Before the first day: the set is laid out again from the new first day.
        assert!(set.insert(d("2026-10-01")));
        assert!(!set.insert(d("2026-11-27")));
        assert_eq!(
            set.days().collect::<Vec<_>>(),
            vec![d("2026-10-01"), d("2026-11-10"), d("2026-11-27")]
        );
        assert_eq!(set.len(), 3);
        assert_eq!(set.since(), Some(d("2026-10-01")));
        assert!(set.contains(d("2026-11-10")));
        assert!(!set.contains(d("2026-11-11")));
        assert!(!set.contains(d("2026-09-30")));
        assert!(!set.contains(d("2027-01-01")));
    }

    #[test]
    fn the_layout_is_postgres_get_bit_order() {
        // Days 0, 1 and 9 after the first: byte 0 = 0b11, byte 1 = 0b10.
        let set: ActiveDays = ["2026-01-01", "2026-01-02", "2026-01-10"]
            .into_iter()
            .map(d)
            .collect();
        assert_eq!(set.bits(), &[0b0000_0011, 0b0000_0010]);
        let stored = ActiveDays::from_stored(set.since(), set.bits().to_vec());
        assert_eq!(stored, set);
        assert_eq!(ActiveDays::from_stored(None, vec![0xff]).len(), 0);
    }

    #[test]
    fn a_year_of_every_day_takes_46_bytes() {
        let mut set = ActiveDays::default();
        let first = d("2026-01-01");
        for i in 0..365 {
            set.insert(first + chrono::Days::new(i));
        }
        assert_eq!((set.len(), set.bits().len()), (365, 46));
    }
}
