//! The GIL-free frame reader: a thread's Python stack, read through [`mem`] while that thread
//! keeps running (and may hold the GIL in a long C call), with the per-version offsets of
//! [`RemoteLayout`].
//!
//! What is read, innermost frame first: the thread state's current frame pointer, each frame's
//! code pointer, link to the next frame out and position (and owner, 3.11+), each code
//! object's `co_filename`, `co_name`, `co_qualname` (3.11+), `co_firstlineno` and
//! `co_linetable`, and those objects' headers and contents. Nothing is dereferenced: every
//! read is a copy that fails instead of faulting, and every value is checked before it is
//! used (a code object's and a string's type, an instruction pointer inside its code).
//!
//! Torn reads: the thread runs while we read, so after a walk every frame's code pointer, link
//! and position are read again, in the opposite order, between two more reads of the current
//! frame pointer; any difference, any failed read, any check that does not hold, drops the
//! whole sample. A stack is thus shown only when it stood still for the whole read — a thread
//! in a C call (a regex holding the GIL, a sleep) or waiting for the GIL — which is when the
//! GIL cannot be had to sample it; a thread running Python code is sampled under the GIL.

use std::collections::HashMap;
use std::sync::Arc;

use aiocop_events::Frame;
use pyo3::ffi;

use crate::compat::object_header::{OB_SIZE, OB_TYPE};
use crate::compat::{FramePosition, RemoteLayout, FRAME_OWNED_BY_GENERATOR};

use super::lines;
use super::mem;
use super::strings::{self, StrHeader};

/// Why a sample was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// A read failed: an address that is not (or no longer) mapped.
    ReadFailed,
    /// A pointer that should be a code object, a string or a bytes object is not one.
    NotTheExpectedObject,
    /// The stack changed while it was read.
    Torn,
    /// A string the reader does not decode (not compact, too long).
    Undecodable,
}

/// One frame as read: its code object's address and facts, and its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFrame {
    /// The code object's address (for comparisons; not a reference).
    pub code: usize,
    /// `co_filename`.
    pub filename: Arc<str>,
    /// `co_name`.
    pub name: Arc<str>,
    /// `co_qualname` (3.11+; `co_name` on 3.10, which has none).
    pub qualname: Arc<str>,
    /// The line being executed, as `PyFrame_GetLineNumber` gives it (-1 when unknown).
    pub line: i32,
}

impl RemoteFrame {
    /// The frame as the sampler reports it: file, line and `co_name`, like a capture under the
    /// GIL.
    pub fn to_frame(&self) -> Frame {
        Frame::new(
            Arc::clone(&self.filename),
            self.line,
            Arc::clone(&self.name),
        )
    }
}

/// Links followed per sample at most, whatever the depth asked for (shim and incomplete frames
/// count too): a bound on the work and on a cycle a torn read could make.
const MAX_LINKS: usize = 512;
/// The most bytes of a code object read (every version's [`crate::compat::CodeFields::size`]
/// is below it: checked at compile time).
const MAX_CODE_PREFIX: usize = 256;

const _: () = {
    if let Some(layout) = <crate::compat::Current as crate::compat::PythonVersion>::REMOTE_LAYOUT {
        assert!(layout.code.size <= MAX_CODE_PREFIX);
    }
};

/// Code objects remembered at most (then all are forgotten).
const CODE_CACHE_CAP: usize = 4096;
/// Longest line table copied: a longer one drops the sample.
const MAX_LINETABLE: usize = 1 << 20;
/// `sizeof(PyBytesObject)` up to `ob_sval`'s first byte: the header compared on reuse.
const BYTES_HEADER: usize = crate::compat::object_header::BYTES_DATA;

/// What the reader keeps of a code object, and what tells that the object at that address is
/// still the same: the pointers read from it and the headers of what they point to.
#[derive(Debug)]
struct CodeEntry {
    /// Pointers to `co_filename`, `co_name`, `co_qualname` (0 on 3.10) and `co_linetable`.
    pointers: [usize; 4],
    firstlineno: i32,
    /// The three strings' headers when read.
    headers: [StrHeader; 3],
    /// The line table's type and size when read.
    linetable_header: (usize, usize),
    filename: Arc<str>,
    name: Arc<str>,
    qualname: Arc<str>,
    linetable: Box<[u8]>,
}

/// A GIL-free reader of one interpreter's frames, with its cache of code objects. Used by one
/// thread (the sampler's).
#[derive(Debug)]
pub struct Reader {
    layout: RemoteLayout,
    codes: HashMap<usize, CodeEntry>,
    code_type: usize,
    unicode_type: usize,
    bytes_type: usize,
}

/// One link of the chain as first read, for the re-read that detects a torn walk.
struct Link {
    addr: usize,
    code: usize,
    previous: usize,
    position: u64,
}

/// A frame's position fields as one word: `f_lasti` in the high half and `f_lineno` in the low
/// one (3.10), or the instruction pointer (3.11+).
fn raw_position(position: &FramePosition, buf: &[u8]) -> u64 {
    match *position {
        FramePosition::LastiAndLineno { lasti, lineno } => {
            (u64::from(mem::int(buf, lasti) as u32) << 32) | u64::from(mem::int(buf, lineno) as u32)
        }
        FramePosition::InstructionPointer(off) => mem::word(buf, off) as u64,
    }
}

impl Reader {
    /// A reader for `layout` (this build's CPython's, [`crate::compat::PythonVersion::REMOTE_LAYOUT`]).
    pub fn new(layout: RemoteLayout) -> Self {
        Reader {
            layout,
            codes: HashMap::new(),
            code_type: (&raw const ffi::PyCode_Type) as usize,
            unicode_type: (&raw const ffi::PyUnicode_Type) as usize,
            bytes_type: (&raw const ffi::PyBytes_Type) as usize,
        }
    }

    /// Up to `depth` frames of the thread whose state is at `tstate`, innermost first, read
    /// without the GIL; the interpreter's own frames and frames still being set up are skipped,
    /// as the C API does. Safe whatever `tstate` is: a thread that ended, a wrong layout or a
    /// stack that changed under the reader gives an error, never a fault.
    pub fn sample(&mut self, tstate: usize, depth: usize) -> Result<Vec<RemoteFrame>, Dropped> {
        let pid = mem::own_pid();
        let first = self.current_frame(pid, tstate)?;
        let mut out = Vec::with_capacity(depth.min(64));
        let mut links: Vec<Link> = Vec::with_capacity(depth.min(64));
        let mut frame = first;
        let fields = self.layout.frame;
        let format = self.layout.code.linetable_format;
        let mut buf = vec![0u8; fields.size];
        while frame != 0 && out.len() < depth && links.len() < MAX_LINKS {
            if !mem::read(pid, frame, &mut buf) {
                return Err(Dropped::ReadFailed);
            }
            let code = mem::word(&buf, fields.code) & !fields.code_tag_bits;
            let previous = mem::word(&buf, fields.previous);
            let position = raw_position(&fields.position, &buf);
            let owner = fields.owner.map(|off| buf[off] as i8);
            links.push(Link {
                addr: frame,
                code,
                previous,
                position,
            });
            frame = previous;
            if matches!((owner, fields.shim_owner_from), (Some(o), Some(shim)) if o >= shim) {
                continue;
            }
            let mut code_buf = [0u8; MAX_CODE_PREFIX];
            let code_buf = &mut code_buf[..self.layout.code.size.min(MAX_CODE_PREFIX)];
            if !mem::read(pid, code, code_buf) {
                return Err(Dropped::ReadFailed);
            }
            if mem::word(code_buf, OB_TYPE) != self.code_type {
                return Err(Dropped::NotTheExpectedObject);
            }
            let Some(addr) = self.position(code, code_buf, position, owner)? else {
                continue; // still being set up: the C API skips it too
            };
            let entry = self.code_entry(pid, code, code_buf)?;
            let line = match fields.position {
                FramePosition::LastiAndLineno { .. } if position as u32 != 0 => {
                    position as u32 as i32
                }
                _ => lines::addr_to_line(format, &entry.linetable, entry.firstlineno, addr),
            };
            out.push(RemoteFrame {
                code,
                filename: Arc::clone(&entry.filename),
                name: Arc::clone(&entry.name),
                qualname: Arc::clone(&entry.qualname),
                line,
            });
        }
        self.check_unchanged(pid, tstate, first, &links)?;
        Ok(out)
    }

    /// The innermost frame's address (0 for a thread with no Python frame).
    fn current_frame(&self, pid: libc::pid_t, tstate: usize) -> Result<usize, Dropped> {
        let mut addr = tstate;
        for &hop in self.layout.thread_to_frame {
            if addr == 0 {
                return Ok(0);
            }
            let mut word = [0u8; 8];
            if !mem::read(pid, addr.wrapping_add(hop), &mut word) {
                return Err(Dropped::ReadFailed);
            }
            addr = usize::from_ne_bytes(word);
        }
        Ok(addr)
    }

    /// The byte offset of the frame's instruction (what `PyCode_Addr2Line` takes), or `None`
    /// for a frame the C API skips as still being set up (3.11+).
    fn position(
        &self,
        code: usize,
        code_buf: &[u8],
        position: u64,
        owner: Option<i8>,
    ) -> Result<Option<i32>, Dropped> {
        let code_fields = self.layout.code;
        match self.layout.frame.position {
            FramePosition::LastiAndLineno { .. } => {
                let lasti = (position >> 32) as u32 as i32;
                Ok(Some(lasti.saturating_mul(2)))
            }
            FramePosition::InstructionPointer(_) => {
                let (Some(instructions), Some(first_traceable)) =
                    (code_fields.instructions, code_fields.first_traceable)
                else {
                    return Err(Dropped::NotTheExpectedObject);
                };
                let start = code.wrapping_add(instructions);
                let units = (position as usize).wrapping_sub(start) as isize;
                if units % 2 != 0 {
                    return Err(Dropped::Torn);
                }
                let units = units / 2;
                let size = mem::word(code_buf, OB_SIZE) as isize;
                if units < -1 || units > size || units > i32::MAX as isize / 2 {
                    return Err(Dropped::Torn); // not inside this code object: torn
                }
                let traceable = mem::int(code_buf, first_traceable) as isize;
                if owner != Some(FRAME_OWNED_BY_GENERATOR) && units < traceable {
                    return Ok(None);
                }
                i32::try_from(units * 2)
                    .map(Some)
                    .map_err(|_| Dropped::Torn)
            }
        }
    }

    /// The cached facts of the code object at `code` (whose first bytes are `code_buf`),
    /// checked against the object now there, or read anew.
    fn code_entry(
        &mut self,
        pid: libc::pid_t,
        code: usize,
        code_buf: &[u8],
    ) -> Result<&CodeEntry, Dropped> {
        let fields = self.layout.code;
        let pointers = [
            mem::word(code_buf, fields.filename),
            mem::word(code_buf, fields.name),
            fields.qualname.map_or(0, |off| mem::word(code_buf, off)),
            mem::word(code_buf, fields.linetable),
        ];
        let firstlineno = mem::int(code_buf, fields.firstlineno);
        // The headers of what the pointers point to, in one read.
        let ascii = self.layout.unicode.ascii_data;
        let mut h0 = [0u8; 64];
        let mut h1 = [0u8; 64];
        let mut h2 = [0u8; 64];
        let mut h3 = [0u8; BYTES_HEADER];
        let qualname_ptr = if pointers[2] == 0 {
            pointers[1]
        } else {
            pointers[2]
        };
        if !mem::read_many(
            pid,
            &mut [
                (pointers[0], &mut h0[..ascii]),
                (pointers[1], &mut h1[..ascii]),
                (qualname_ptr, &mut h2[..ascii]),
                (pointers[3], &mut h3[..]),
            ],
        ) {
            return Err(Dropped::ReadFailed);
        }
        let headers = [
            StrHeader::parse(&h0),
            StrHeader::parse(&h1),
            StrHeader::parse(&h2),
        ];
        let linetable_header = (mem::word(&h3, OB_TYPE), mem::word(&h3, OB_SIZE));
        let fresh = self.codes.get(&code).is_some_and(|entry| {
            entry.pointers == pointers
                && entry.firstlineno == firstlineno
                && entry.headers == headers
                && entry.linetable_header == linetable_header
        });
        if !fresh {
            let entry = self.read_entry(
                pid,
                [pointers[0], pointers[1], qualname_ptr, pointers[3]],
                headers,
                linetable_header,
            )?;
            let entry = CodeEntry {
                pointers,
                firstlineno,
                ..entry
            };
            if self.codes.len() >= CODE_CACHE_CAP {
                self.codes.clear();
            }
            self.codes.insert(code, entry);
        }
        self.codes.get(&code).ok_or(Dropped::ReadFailed)
    }

    /// Reads the strings and the line table a code object points to, given their headers.
    fn read_entry(
        &self,
        pid: libc::pid_t,
        addrs: [usize; 4],
        headers: [StrHeader; 3],
        (linetable_type, linetable_len): (usize, usize),
    ) -> Result<CodeEntry, Dropped> {
        if headers.iter().any(|h| h.type_addr != self.unicode_type)
            || linetable_type != self.bytes_type
        {
            return Err(Dropped::NotTheExpectedObject);
        }
        if linetable_len > MAX_LINETABLE {
            return Err(Dropped::Undecodable);
        }
        let unicode = self.layout.unicode;
        let mut layouts = [(0usize, 0usize, 0u8); 3];
        for (slot, header) in layouts.iter_mut().zip(&headers) {
            *slot = header.data(&unicode).ok_or(Dropped::Undecodable)?;
        }
        let mut texts: [Vec<u8>; 3] = [
            vec![0; layouts[0].1],
            vec![0; layouts[1].1],
            vec![0; layouts[2].1],
        ];
        let mut linetable = vec![0u8; linetable_len];
        {
            let [t0, t1, t2] = &mut texts;
            let mut regions: Vec<(usize, &mut [u8])> = Vec::with_capacity(4);
            for ((addr, (start, _, _)), text) in addrs.iter().zip(&layouts).zip([t0, t1, t2]) {
                if !text.is_empty() {
                    regions.push((addr.wrapping_add(*start), &mut text[..]));
                }
            }
            if !linetable.is_empty() {
                regions.push((addrs[3].wrapping_add(BYTES_HEADER), &mut linetable[..]));
            }
            if !mem::read_many(pid, &mut regions) {
                return Err(Dropped::ReadFailed);
            }
        }
        let mut decoded = texts
            .iter()
            .zip(&layouts)
            .map(|(bytes, &(_, _, width))| strings::decode(bytes, width).map(Arc::<str>::from));
        let (Some(Some(filename)), Some(Some(name)), Some(Some(qualname))) =
            (decoded.next(), decoded.next(), decoded.next())
        else {
            return Err(Dropped::Undecodable);
        };
        Ok(CodeEntry {
            pointers: [0; 4],
            firstlineno: 0,
            headers,
            linetable_header: (linetable_type, linetable_len),
            filename,
            name,
            qualname,
            linetable: linetable.into_boxed_slice(),
        })
    }

    /// Reads every link again, outermost first (the first pass went innermost first), between
    /// two more reads of the current frame pointer: the sample stands only if nothing changed,
    /// the innermost frame's position included. A thread held in a C call (holding the GIL or
    /// not) or waiting for the GIL passes; a thread running Python code moves its innermost
    /// position within nanoseconds and fails, and is sampled under the GIL instead.
    fn check_unchanged(
        &self,
        pid: libc::pid_t,
        tstate: usize,
        first: usize,
        links: &[Link],
    ) -> Result<(), Dropped> {
        if self.current_frame(pid, tstate)? != first {
            return Err(Dropped::Torn);
        }
        let fields = self.layout.frame;
        let mut bufs = vec![0u8; fields.size * links.len()];
        for (chunk_links, chunk_bufs) in links
            .rchunks(mem::MAX_REGIONS)
            .zip(bufs.rchunks_mut(fields.size * mem::MAX_REGIONS))
        {
            let mut regions: Vec<(usize, &mut [u8])> = chunk_links
                .iter()
                .map(|link| link.addr)
                .zip(chunk_bufs.chunks_mut(fields.size))
                .rev()
                .collect();
            if !mem::read_many(pid, &mut regions) {
                return Err(Dropped::ReadFailed);
            }
        }
        if self.current_frame(pid, tstate)? != first {
            return Err(Dropped::Torn);
        }
        for (link, buf) in links.iter().zip(bufs.chunks(fields.size)) {
            let code = mem::word(buf, fields.code) & !fields.code_tag_bits;
            let previous = mem::word(buf, fields.previous);
            let position = raw_position(&fields.position, buf);
            if code != link.code || previous != link.previous || position != link.position {
                return Err(Dropped::Torn);
            }
        }
        Ok(())
    }
}
