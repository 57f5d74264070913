//! Text of a copied compact unicode object (the way py-spy decodes one): the header says where
//! the characters start and how wide they are (ASCII, latin-1, UCS-2, UCS-4).

use crate::compat::object_header::{
    STATE_ASCII, STATE_COMPACT, STATE_KIND_MASK, UNICODE_HASH, UNICODE_LENGTH, UNICODE_STATE,
};
use crate::compat::UnicodeFields;

use super::mem;

/// Longest string the reader copies, in characters: longer names and paths drop the sample.
pub(crate) const MAX_CHARS: usize = 4096;

/// What a unicode object's header says: enough to find its characters, and to tell, on a
/// later read, whether the object at that address is still the same string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StrHeader {
    /// `ob_type`.
    pub(crate) type_addr: usize,
    /// `length`, in characters.
    pub(crate) length: usize,
    /// `hash` (-1 until computed).
    pub(crate) hash: usize,
    /// `state`.
    pub(crate) state: u32,
}

impl StrHeader {
    /// The header in `buf` (a copy of at least `PyASCIIObject`).
    pub(crate) fn parse(buf: &[u8]) -> Self {
        StrHeader {
            type_addr: mem::word(buf, crate::compat::object_header::OB_TYPE),
            length: mem::word(buf, UNICODE_LENGTH),
            hash: mem::word(buf, UNICODE_HASH),
            state: mem::uint(buf, UNICODE_STATE),
        }
    }

    /// Where the characters start (relative to the object) and how many bytes they take;
    /// `None` for a string the reader does not decode (not compact, or too long).
    pub(crate) fn data(&self, fields: &UnicodeFields) -> Option<(usize, usize, u8)> {
        if self.state & STATE_COMPACT == 0 || self.length > MAX_CHARS {
            return None;
        }
        let width = ((self.state & STATE_KIND_MASK) >> 2) as u8;
        if !matches!(width, 1 | 2 | 4) {
            return None;
        }
        let start = if self.state & STATE_ASCII != 0 {
            if width != 1 {
                return None;
            }
            fields.ascii_data
        } else {
            fields.compact_data
        };
        Some((start, self.length * usize::from(width), width))
    }
}

/// Decodes `bytes`, characters of `width` bytes each; `None` on a character that is not one
/// (a torn or foreign copy).
pub(crate) fn decode(bytes: &[u8], width: u8) -> Option<String> {
    match width {
        1 => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        2 => bytes
            .chunks_exact(2)
            .map(|c| u16::from_ne_bytes([c[0], c[1]]))
            .map(|u| char::from_u32(u32::from(u)))
            .collect(),
        4 => bytes
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_width() {
        assert_eq!(decode(b"abc", 1).as_deref(), Some("abc"));
        assert_eq!(decode(&[0xe9], 1).as_deref(), Some("é"));
        let ucs2: Vec<u8> = "λx".encode_utf16().flat_map(u16::to_ne_bytes).collect();
        assert_eq!(decode(&ucs2, 2).as_deref(), Some("λx"));
        let ucs4: Vec<u8> = "🐍"
            .chars()
            .flat_map(|c| (c as u32).to_ne_bytes())
            .collect();
        assert_eq!(decode(&ucs4, 4).as_deref(), Some("🐍"));
        assert_eq!(decode(&0xD800u32.to_ne_bytes(), 4), None);
    }

    #[test]
    fn only_compact_strings_of_known_width() {
        let fields = UnicodeFields {
            ascii_data: 40,
            compact_data: 56,
        };
        let header = |state, length| StrHeader {
            type_addr: 1,
            length,
            hash: 0,
            state,
        };
        let ascii = STATE_COMPACT | STATE_ASCII | (1 << 2);
        assert_eq!(header(ascii, 3).data(&fields), Some((40, 3, 1)));
        let ucs2 = STATE_COMPACT | (2 << 2);
        assert_eq!(header(ucs2, 3).data(&fields), Some((56, 6, 2)));
        assert_eq!(header(1 << 2, 3).data(&fields), None, "not compact");
        assert_eq!(header(ascii, MAX_CHARS + 1).data(&fields), None);
        assert_eq!(header(STATE_COMPACT | (3 << 2), 1).data(&fields), None);
    }
}
