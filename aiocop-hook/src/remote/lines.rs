//! Line numbers from a copied `co_linetable`, as `PyCode_Addr2Line` computes them: the 3.10
//! PEP 626 table and the 3.11+ location table (`Objects/lnotab_notes.txt`,
//! `Objects/locations.md` of each version). Pure functions of the bytes: a torn or foreign
//! table gives a wrong or no line, never a panic.

use crate::compat::LineTableFormat;

/// The line of the instruction at byte offset `addr` (`lasti` in code units times 2), or -1
/// where the table has none; `firstlineno` for an offset before the first instruction, as
/// `PyCode_Addr2Line` gives.
pub(crate) fn addr_to_line(
    format: LineTableFormat,
    table: &[u8],
    firstlineno: i32,
    addr: i32,
) -> i32 {
    if addr < 0 {
        return firstlineno;
    }
    match format {
        LineTableFormat::Pep626 => pep626(table, firstlineno, addr),
        LineTableFormat::Locations => locations(table, firstlineno, addr),
    }
}

/// 3.10: pairs of (bytes covered, unsigned; lines advanced, signed, -128 for none). Empty
/// ranges only advance the line.
fn pep626(table: &[u8], firstlineno: i32, addr: i32) -> i32 {
    let mut line = firstlineno;
    let mut end = 0i32;
    for pair in table.chunks_exact(2) {
        let start = end;
        end = end.saturating_add(i32::from(pair[0]));
        let delta = pair[1] as i8;
        let this = if delta == -128 {
            -1
        } else {
            line = line.wrapping_add(i32::from(delta));
            line
        };
        if start != end && addr < end {
            return this;
        }
    }
    -1
}

/// The location table's kind: no location at all.
const NONE: u8 = 15;
/// The kind of a long entry: line delta, end line delta, columns, as varints.
const LONG: u8 = 14;
/// The kind of an entry without columns: a line delta.
const NO_COLUMNS: u8 = 13;
/// The kinds of one-line entries: the line delta is the kind minus this.
const ONE_LINE0: u8 = 10;

/// 3.11+: entries of a first byte (bit 7 set; the kind in bits 3-6; the code units covered
/// minus one in bits 0-2) and the kind's data.
fn locations(table: &[u8], firstlineno: i32, addr: i32) -> i32 {
    let mut line = firstlineno;
    let mut end = 0i32;
    let mut i = 0usize;
    while i < table.len() {
        let first = table[i];
        if first & 0x80 == 0 {
            return -1; // not at an entry's first byte: a table we cannot read
        }
        let kind = (first >> 3) & 15;
        let delta = match kind {
            LONG | NO_COLUMNS => signed_varint(table.get(i + 1..).unwrap_or(&[])),
            ONE_LINE0..=12 => i32::from(kind - ONE_LINE0),
            _ => 0,
        };
        line = line.wrapping_add(delta);
        let start = end;
        end = end.saturating_add((i32::from(first & 7) + 1) * 2);
        if start <= addr && addr < end {
            return if kind == NONE { -1 } else { line };
        }
        i += 1;
        while i < table.len() && table[i] & 0x80 == 0 {
            i += 1;
        }
    }
    -1
}

/// A varint of 6-bit chunks, low first, bit 6 set on all but the last.
fn varint(bytes: &[u8]) -> u32 {
    let mut value = 0u32;
    let mut shift = 0u32;
    for &b in bytes {
        if shift < 32 {
            value |= u32::from(b & 63) << shift;
        }
        if b & 64 == 0 {
            break;
        }
        shift += 6;
    }
    value
}

/// A signed varint: the sign in the low bit of the unsigned one.
fn signed_varint(bytes: &[u8]) -> i32 {
    let raw = varint(bytes);
    let magnitude = (raw >> 1) as i32;
    if raw & 1 == 1 {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep626_pairs() {
        // bytes 0-5 on line 10 (+0), 6-9 on 12 (+2), an empty range moving to 13, 10-13 with
        // no line, 14-15 on 12 (13 - 1 after the -128 entry).
        let table = [6, 0, 4, 2, 0, 1, 4, 0x80, 2, 0xff];
        let line = |addr| addr_to_line(LineTableFormat::Pep626, &table, 10, addr);
        assert_eq!(line(-2), 10);
        assert_eq!(line(0), 10);
        assert_eq!(line(5), 10);
        assert_eq!(line(6), 12);
        assert_eq!(line(9), 12);
        assert_eq!(line(10), -1);
        assert_eq!(line(14), 12);
        assert_eq!(line(16), -1);
    }

    #[test]
    fn location_entries() {
        let table = [
            0x80 | (13 << 3) | 1, // no columns, 2 units, line +1 (varint 2)
            2,
            0x80 | (11 << 3), // one line, 1 unit, +1
            0,
            0,
            0x80 | (15 << 3),     // no location, 1 unit
            0x80 | (14 << 3) | 2, // long, 3 units, -2 (varint 5), then three varints
            5,
            0,
            0,
            0,
            0x80 | (3 << 3), // short form, 1 unit, same line
            0,
        ];
        let line = |addr| addr_to_line(LineTableFormat::Locations, &table, 20, addr);
        assert_eq!(line(-2), 20);
        assert_eq!(line(0), 21);
        assert_eq!(line(2), 21);
        assert_eq!(line(4), 22);
        assert_eq!(line(6), -1);
        assert_eq!(line(8), 20);
        assert_eq!(line(12), 20);
        assert_eq!(line(14), 20);
        assert_eq!(line(16), -1);
    }

    #[test]
    fn varints_of_several_chunks() {
        assert_eq!(varint(&[0x41, 0x01]), 1 | (1 << 6));
        assert_eq!(signed_varint(&[3]), -1);
        assert_eq!(signed_varint(&[0x40 | 2, 1]), 33);
        assert_eq!(locations(&[0x00], 1, 0), -1);
    }
}
