//! What an uploaded file really is, and whether WhatsApp will take it (§6 Media).
//!
//! The type comes from the bytes only. A file name is typed by whoever uploads the file,
//! so a renamed `.exe` still says "fatura.pdf". [`detect`] looks at magic numbers and,
//! for container formats (OLE2, ZIP, ISO-BMFF, OGG, RIFF), at enough of the structure to
//! tell what is inside. The name is used in one case only: choosing between Word, Excel
//! and PowerPoint when the container cannot tell them apart. It never makes a refused
//! file acceptable.
//!
//! Callers should name the outgoing file with [`DetectedMedia::extension`] rather than
//! the uploaded extension, so the recipient's device opens it with a viewer for what
//! it really is.
//!
//! The same table decides how a stored file may be served back to a browser
//! ([`inline_mime_type`]): in place only for the image, audio and video formats it
//! recognises, whatever type the sender declared.
//!
//! Refused on purpose although Meta might take them: documents that carry VBA macros
//! (`vbaProject.bin` in OOXML, a `Macros` / `_VBA_PROJECT_CUR` storage in OLE2) and text
//! that is HTML, SVG or script markup. Both are active content that a contact center
//! should not send to customers.

use serde::Serialize;

/// What WhatsApp calls the media type of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Audio,
    Video,
    Document,
    Sticker,
}

impl MediaKind {
    /// For sending: the WhatsApp message `type` for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Document => "document",
            MediaKind::Sticker => "sticker",
        }
    }
}

/// A file type that WhatsApp accepts, as recognised from its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DetectedMedia {
    pub kind: MediaKind,
    /// The MIME type to give Meta in the upload's `type` field.
    pub mime_type: &'static str,
    /// Without the dot; the extension the file should carry when sent.
    pub extension: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("the file is empty")]
    Empty,
    #[error("unsupported file type; accepted: {accepted}")]
    Unsupported { accepted: &'static str },
    #[error("{kind} files may have at most {max_bytes} bytes; this one has {size}")]
    TooLarge {
        kind: &'static str,
        max_bytes: u64,
        size: u64,
    },
}

/// The human list of accepted formats, shown in [`MediaError::Unsupported`].
pub const ACCEPTED: &str = "PNG, JPEG, WEBP (sticker), MP3, AAC, OGG (Opus), AMR, M4A, MP4, 3GP, \
                            PDF, DOC, DOCX, XLS, XLSX, PPT, PPTX, TXT";

const MIB: u64 = 1024 * 1024;

/// Meta's size limit for a kind: image 5 MB, audio and video 16 MB, document 100 MB,
/// sticker 500 KB.
///
/// Meta writes "MB" without saying which; we read it as binary (MB = 1024 × 1024 bytes,
/// KB = 1024 bytes). If Meta means 10^6, a file between the two readings passes here and
/// Meta refuses it at upload, so the agent still gets an error, only a later one.
/// Static stickers are limited to 100 KB by Meta; only animated ones may reach 500 KB,
/// and this limit is the animated one.
pub fn max_bytes(kind: MediaKind) -> u64 {
    match kind {
        MediaKind::Image => 5 * MIB,
        MediaKind::Audio | MediaKind::Video => 16 * MIB,
        MediaKind::Document => 100 * MIB,
        MediaKind::Sticker => 500 * 1024,
    }
}

/// Detects the type from the bytes; `filename` is only a tie-breaker between formats that
/// share a container (DOC/XLS/PPT inside OLE2 when the directory cannot tell them apart,
/// DOCX/XLSX/PPTX inside a password-protected OLE2 package), never a reason to accept.
pub fn detect(bytes: &[u8], filename: Option<&str>) -> Result<DetectedMedia, MediaError> {
    if bytes.is_empty() {
        return Err(MediaError::Empty);
    }
    sniff(bytes, filename).ok_or(MediaError::Unsupported { accepted: ACCEPTED })
}

/// [`detect`], then Meta's size limit for the detected kind ([`max_bytes`]).
pub fn validate_upload(bytes: &[u8], filename: Option<&str>) -> Result<DetectedMedia, MediaError> {
    let media = detect(bytes, filename)?;
    // usize is at most 64 bits on every target Rust supports, so this never saturates.
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    let max = max_bytes(media.kind);
    if size > max {
        return Err(MediaError::TooLarge {
            kind: media.kind.as_str(),
            max_bytes: max,
            size,
        });
    }
    Ok(media)
}

/// The formats a browser may show in place (`Content-Disposition: inline`), as the MIME type to
/// send. Only images, audio and video whose decoders run no script: PNG, JPEG, WEBP, MP3, AAC,
/// OGG/Opus, AMR, M4A, MP4 and 3GP. Listed by name rather than "every non-document kind" so
/// that a format added to [`detect`] later (SVG, GIF, ...) is not shown inline by accident.
const INLINE: [DetectedMedia; 10] = [PNG, JPEG, WEBP, MP3, AAC, OGG_OPUS, AMR, M4A, MP4, THREE_GP];

/// The MIME type under which stored `bytes` may be shown in a browser, or `None` when they must
/// only be downloaded. Decided from the content alone: a sender's declared type says nothing
/// (an "image" declared `text/html` or `image/svg+xml` would run script in the app's origin).
pub fn inline_mime_type(bytes: &[u8]) -> Option<&'static str> {
    let media = sniff(bytes, None)?;
    INLINE.contains(&media).then_some(media.mime_type)
}

const fn media(kind: MediaKind, mime_type: &'static str, extension: &'static str) -> DetectedMedia {
    DetectedMedia {
        kind,
        mime_type,
        extension,
    }
}

const PNG: DetectedMedia = media(MediaKind::Image, "image/png", "png");
const JPEG: DetectedMedia = media(MediaKind::Image, "image/jpeg", "jpg");
const WEBP: DetectedMedia = media(MediaKind::Sticker, "image/webp", "webp");
const MP3: DetectedMedia = media(MediaKind::Audio, "audio/mpeg", "mp3");
const AAC: DetectedMedia = media(MediaKind::Audio, "audio/aac", "aac");
const OGG_OPUS: DetectedMedia = media(MediaKind::Audio, "audio/ogg", "ogg");
const AMR: DetectedMedia = media(MediaKind::Audio, "audio/amr", "amr");
const M4A: DetectedMedia = media(MediaKind::Audio, "audio/mp4", "m4a");
const MP4: DetectedMedia = media(MediaKind::Video, "video/mp4", "mp4");
const THREE_GP: DetectedMedia = media(MediaKind::Video, "video/3gpp", "3gp");
const PDF: DetectedMedia = media(MediaKind::Document, "application/pdf", "pdf");
const DOC: DetectedMedia = media(MediaKind::Document, "application/msword", "doc");
const XLS: DetectedMedia = media(MediaKind::Document, "application/vnd.ms-excel", "xls");
const PPT: DetectedMedia = media(MediaKind::Document, "application/vnd.ms-powerpoint", "ppt");
const DOCX: DetectedMedia = media(
    MediaKind::Document,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "docx",
);
const XLSX: DetectedMedia = media(
    MediaKind::Document,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xlsx",
);
const PPTX: DetectedMedia = media(
    MediaKind::Document,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "pptx",
);
const TXT: DetectedMedia = media(MediaKind::Document, "text/plain", "txt");

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
const OLE_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";
const ZIP_LOCAL: &[u8] = b"PK\x03\x04";

fn sniff(bytes: &[u8], filename: Option<&str>) -> Option<DetectedMedia> {
    // Once a magic number matches, the answer is that format or nothing: falling through
    // to the text check would only let a damaged binary pass as text by accident.
    if bytes.starts_with(PNG_MAGIC) {
        return Some(PNG);
    }
    if bytes.starts_with(b"\xFF\xD8\xFF") {
        return Some(JPEG);
    }
    if bytes.starts_with(b"RIFF") {
        return is_webp(bytes).then_some(WEBP);
    }
    if bytes.starts_with(b"OggS") {
        return is_ogg_opus(bytes).then_some(OGG_OPUS);
    }
    if bytes.starts_with(b"#!AMR\n") {
        return Some(AMR);
    }
    if has_at(bytes, 4, b"ftyp") {
        return iso_bmff(bytes);
    }
    if bytes.starts_with(b"%PDF-") {
        return Some(PDF);
    }
    if bytes.starts_with(OLE_MAGIC) {
        return ole2(bytes, filename);
    }
    if bytes.starts_with(ZIP_LOCAL) {
        return ooxml(bytes, filename);
    }
    if bytes.starts_with(b"ID3") {
        // Text may begin with "ID3" too; only a well-formed tag header commits to audio.
        if let Some(after_tags) = skip_id3(bytes) {
            return audio_stream_at(bytes, after_tags);
        }
    }
    if bytes.first() == Some(&0xFF) {
        // 0xFF never occurs in UTF-8, so this cannot be text either.
        return audio_stream_at(bytes, 0);
    }
    is_plain_text(bytes).then_some(TXT)
}

/// `magic` occurs at byte `at` of `bytes`.
fn has_at(bytes: &[u8], at: usize, magic: &[u8]) -> bool {
    bytes.get(at..).is_some_and(|rest| rest.starts_with(magic))
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn extension_of(filename: &str) -> Option<&str> {
    let base = filename.rsplit(['/', '\\']).next()?;
    base.rsplit_once('.').map(|(_, ext)| ext)
}

/// Chooses among formats that the content allows. The candidates come in priority order;
/// the file name only picks one of them, so it can never add a format.
fn tie_break(candidates: &[DetectedMedia], filename: Option<&str>) -> Option<DetectedMedia> {
    if let [only] = candidates {
        return Some(only.clone());
    }
    let named = filename.and_then(extension_of).and_then(|ext| {
        candidates
            .iter()
            .find(|c| c.extension.eq_ignore_ascii_case(ext))
    });
    named.or(candidates.first()).cloned()
}

// ---------------------------------------------------------------- images, stickers

/// RIFF is also WAV and AVI: only a WEBP form with a VP8 image chunk is a sticker.
fn is_webp(bytes: &[u8]) -> bool {
    has_at(bytes, 8, b"WEBP")
        && [b"VP8 ", b"VP8L", b"VP8X"]
            .iter()
            .any(|chunk| has_at(bytes, 12, chunk.as_slice()))
}

// ---------------------------------------------------------------- audio

/// Meta takes OGG only with Opus inside. The first page must open the stream (BOS flag)
/// and its first packet must be the Opus identification header; Vorbis, FLAC or a video
/// stream there means another codec.
fn is_ogg_opus(bytes: &[u8]) -> bool {
    let (Some(&version), Some(&header_type), Some(&segments)) =
        (bytes.get(4), bytes.get(5), bytes.get(26))
    else {
        return false;
    };
    let first_packet = 27 + usize::from(segments);
    version == 0
        && header_type & 0x02 != 0
        && bytes
            .get(first_packet..)
            .is_some_and(|p| p.starts_with(b"OpusHead"))
}

/// Offset just past the ID3v2 tag(s) at the start, or `None` if the header is malformed
/// or the tag runs past the end of the file.
fn skip_id3(bytes: &[u8]) -> Option<usize> {
    let mut pos = 0usize;
    // Some taggers stack several tags; each one is checked the same way.
    while bytes.get(pos..)?.starts_with(b"ID3") {
        let header = bytes.get(pos..pos + 10)?;
        let (major, revision, flags, size) = (header[3], header[4], header[5], &header[6..10]);
        if !(2..=4).contains(&major) || revision == 0xFF || size.iter().any(|b| b & 0x80 != 0) {
            return None;
        }
        // "Syncsafe" integer: 7 bits per byte so the size never looks like a frame sync.
        let body = size
            .iter()
            .fold(0usize, |acc, &b| (acc << 7) | usize::from(b));
        let footer = if flags & 0x10 != 0 { 10 } else { 0 };
        pos = pos + 10 + body + footer;
        if pos > bytes.len() {
            return None;
        }
    }
    // Tolerate zero padding written after the declared tag size.
    while bytes.get(pos) == Some(&0) {
        pos += 1;
    }
    Some(pos)
}

/// MP3 or AAC (ADTS) frames starting at `pos`.
fn audio_stream_at(bytes: &[u8], pos: usize) -> Option<DetectedMedia> {
    let stream = bytes.get(pos..)?;
    if frames_chain(stream, mpeg_layer3_frame_len) {
        Some(MP3)
    } else if frames_chain(stream, adts_frame_len) {
        Some(AAC)
    } else {
        None
    }
}

/// The first frame header must be valid, and when the file goes on past that frame the
/// next header must be valid too. Eleven set bits are too common in arbitrary binary
/// data to trust one header alone.
fn frames_chain(stream: &[u8], frame_len: fn(&[u8]) -> Option<usize>) -> bool {
    let Some(len) = frame_len(stream) else {
        return false;
    };
    if len == 0 {
        // Free-format bitrate: the length is not in the header, so there is no next
        // header to look for.
        return true;
    }
    match stream.get(len..) {
        Some(rest) if rest.len() >= 4 => frame_len(rest).is_some(),
        // The file ends inside or right after the first frame.
        _ => true,
    }
}

/// Bitrates in kbit/s by index; index 0 is "free format", 15 is invalid.
const MPEG1_LAYER3_KBPS: [usize; 15] = [
    0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];
const MPEG2_LAYER3_KBPS: [usize; 15] =
    [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

/// Length of the MPEG audio layer III frame whose header starts `h`; `Some(0)` for a
/// free-format frame; `None` when `h` is not such a header (layers I and II are not MP3).
fn mpeg_layer3_frame_len(h: &[u8]) -> Option<usize> {
    let &[b0, b1, b2, b3] = h.get(..4)? else {
        return None;
    };
    let version = (b1 >> 3) & 0b11; // 00 = 2.5, 01 reserved, 10 = 2, 11 = 1
    let layer = (b1 >> 1) & 0b11; // 01 = layer III
    let bitrate_index = usize::from(b2 >> 4);
    let rate_index = usize::from((b2 >> 2) & 0b11);
    if b0 != 0xFF
        || b1 & 0xE0 != 0xE0
        || version == 0b01
        || layer != 0b01
        || bitrate_index == 15
        || rate_index == 3
        || b3 & 0b11 == 0b10
    {
        return None;
    }
    if bitrate_index == 0 {
        return Some(0);
    }
    let padding = usize::from((b2 >> 1) & 1);
    let (kbps, rates, samples_per_byte) = match version {
        0b11 => (MPEG1_LAYER3_KBPS, [44_100, 48_000, 32_000], 144),
        0b10 => (MPEG2_LAYER3_KBPS, [22_050, 24_000, 16_000], 72),
        _ => (MPEG2_LAYER3_KBPS, [11_025, 12_000, 8_000], 72),
    };
    Some(samples_per_byte * kbps[bitrate_index] * 1000 / rates[rate_index] + padding)
}

/// Length of the AAC ADTS frame whose header starts `h`. The sync word is 12 bits and
/// the layer is always 0, which keeps it apart from MP3 (FFF1/FFF9 without CRC,
/// FFF0/FFF8 with).
fn adts_frame_len(h: &[u8]) -> Option<usize> {
    let &[b0, b1, b2, b3, b4, b5] = h.get(..6)? else {
        return None;
    };
    let sampling_index = (b2 >> 2) & 0x0F;
    let frame_len = (usize::from(b3 & 0b11) << 11) | (usize::from(b4) << 3) | usize::from(b5 >> 5);
    let header_len = if b1 & 1 == 1 { 7 } else { 9 };
    (b0 == 0xFF && b1 & 0xF6 == 0xF0 && sampling_index <= 12 && frame_len >= header_len)
        .then_some(frame_len)
}

// ---------------------------------------------------------------- video (and M4A)

/// ISO base media ("MP4"): the major brand of the `ftyp` box says which profile the
/// writer followed. Compatible brands are ignored on purpose: QuickTime, HEIF and AVIF
/// files list `isom`/`iso8` among them, and Meta takes none of those.
fn iso_bmff(bytes: &[u8]) -> Option<DetectedMedia> {
    let box_len = usize::try_from(be_u32(bytes, 0)?).ok()?;
    // size, type, major brand, minor version, then whole 4-byte compatible brands.
    if box_len < 16 || (box_len - 16) % 4 != 0 || box_len > bytes.len() {
        return None;
    }
    let &[a, b, c, d] = bytes.get(8..12)? else {
        return None;
    };
    match [a, b, c, d] {
        [b'M', b'4', b'A' | b'B', b' '] => Some(M4A),
        [b'3', b'g', b'p' | b'2', _] => Some(THREE_GP),
        [b'i', b's', b'o', b'm' | b'2'..=b'9'] => Some(MP4),
        [b'm', b'p', b'4', b'1' | b'2']
        | [b'a', b'v', b'c', b'1']
        | [b'd', b'a', b's', b'h']
        | [b'M', b'S', b'N', b'V']
        | [b'M', b'4', b'V', b' ']
        | [b'm', b'm', b'p', b'4'] => Some(MP4),
        _ => None,
    }
}

// ---------------------------------------------------------------- OLE2 (DOC, XLS, PPT)

/// What a stream or storage name in an OLE2 directory says about the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OleMark {
    Word,
    Excel,
    PowerPoint,
    /// Password-protected DOCX/XLSX/PPTX: the OOXML package is encrypted inside OLE2.
    EncryptedOoxml,
    Macros,
}

const OLE_STREAM: u8 = 2;
const OLE_STORAGE: u8 = 1;
const OLE_ROOT: u8 = 5;

/// (name, object type, mark). Excel 5/95 calls its stream "Book".
const OLE_MARKS: [(&str, u8, OleMark); 7] = [
    ("WordDocument", OLE_STREAM, OleMark::Word),
    ("Workbook", OLE_STREAM, OleMark::Excel),
    ("Book", OLE_STREAM, OleMark::Excel),
    ("PowerPoint Document", OLE_STREAM, OleMark::PowerPoint),
    ("EncryptedPackage", OLE_STREAM, OleMark::EncryptedOoxml),
    ("Macros", OLE_STORAGE, OleMark::Macros),
    ("_VBA_PROJECT_CUR", OLE_STORAGE, OleMark::Macros),
];

/// OLE2 also holds MSI installers, Outlook messages and Visio drawings, so a file is
/// only a document if its directory shows Word, Excel or PowerPoint content.
fn ole2(bytes: &[u8], filename: Option<&str>) -> Option<DetectedMedia> {
    // Reading the root's own children keeps an embedded object (an Excel chart inside a
    // Word file lives in a sub-storage) from being taken for the file itself. A damaged
    // directory falls back to a scan that also sees nested entries; the file name breaks
    // the ties that scan can produce.
    let marks = OleFile::parse(bytes)
        .and_then(|ole| ole.root_marks())
        .unwrap_or_else(|| scan_ole_entries(bytes));
    if marks.contains(&OleMark::Macros) {
        return None;
    }
    let mut candidates = Vec::new();
    for (mark, format) in [
        (OleMark::Word, DOC),
        (OleMark::Excel, XLS),
        (OleMark::PowerPoint, PPT),
    ] {
        if marks.contains(&mark) {
            candidates.push(format);
        }
    }
    if candidates.is_empty() && marks.contains(&OleMark::EncryptedOoxml) {
        // The encryption hides which application wrote it; only the name can tell.
        candidates = vec![DOCX, XLSX, PPTX];
    }
    tie_break(&candidates, filename)
}

/// The mark for a 128-byte directory entry, if its name and type are one we look for.
fn entry_mark(entry: &[u8]) -> Option<OleMark> {
    let name_len = usize::from(le_u16(entry, 64)?);
    let object_type = *entry.get(66)?;
    OLE_MARKS.iter().find_map(|&(name, ty, mark)| {
        // The length counts UTF-16 code units plus the terminating NUL, in bytes.
        let matches = ty == object_type
            && name_len == (name.len() + 1) * 2
            && name
                .bytes()
                .enumerate()
                .all(|(i, c)| entry.get(2 * i..2 * i + 2) == Some(&[c, 0][..]));
        matches.then_some(mark)
    })
}

/// Fallback for directories that cannot be walked: directory entries are 128 bytes and
/// sectors are 512 or 4096 bytes, so every entry starts at a multiple of 128. Requiring
/// the exact name length and object type there keeps document text from matching.
fn scan_ole_entries(bytes: &[u8]) -> Vec<OleMark> {
    let mut marks = Vec::new();
    for entry in bytes.get(512..).unwrap_or_default().chunks_exact(128) {
        if let Some(mark) = entry_mark(entry)
            && !marks.contains(&mark)
        {
            marks.push(mark);
        }
    }
    marks
}

const END_OF_CHAIN: u32 = 0xFFFF_FFFE;
const NO_STREAM: u32 = 0xFFFF_FFFF;
/// Sector numbers above this are markers (free, end of chain, FAT, DIFAT), not sectors.
const MAX_REGULAR_SECTOR: u32 = 0xFFFF_FFFA;
const HEADER_DIFAT_ENTRIES: usize = 109;

/// Just enough of [MS-CFB] to read the directory: sector size, the FAT sector list and
/// the directory's sector chain.
struct OleFile<'a> {
    bytes: &'a [u8],
    sector_shift: u32,
    /// Sector numbers of the FAT sectors, in order.
    fat_sectors: Vec<u32>,
}

impl<'a> OleFile<'a> {
    fn parse(bytes: &'a [u8]) -> Option<Self> {
        let sector_shift = u32::from(le_u16(bytes, 0x1E)?);
        if sector_shift != 9 && sector_shift != 12 {
            return None;
        }
        let sector_size = 1usize << sector_shift;
        // Every count read from the file is bounded by the sectors that actually exist,
        // so a forged header cannot make us allocate or loop beyond the input.
        let sectors_in_file = bytes.len() / sector_size;
        let fat_count = usize::try_from(le_u32(bytes, 0x2C)?).ok()?;
        if fat_count > sectors_in_file {
            return None;
        }
        let mut ole = OleFile {
            bytes,
            sector_shift,
            fat_sectors: Vec::with_capacity(fat_count),
        };
        for i in 0..HEADER_DIFAT_ENTRIES.min(fat_count) {
            ole.fat_sectors.push(le_u32(bytes, 0x4C + 4 * i)?);
        }
        // The remaining FAT sector numbers live in a chain of DIFAT sectors whose last
        // slot points to the next DIFAT sector.
        let per_difat = sector_size / 4 - 1;
        let mut difat = le_u32(bytes, 0x44)?;
        let mut hops = 0;
        while ole.fat_sectors.len() < fat_count {
            hops += 1;
            if hops > sectors_in_file {
                return None;
            }
            let base = ole.sector_offset(difat)?;
            for i in 0..per_difat {
                if ole.fat_sectors.len() == fat_count {
                    break;
                }
                ole.fat_sectors.push(le_u32(bytes, base + 4 * i)?);
            }
            difat = le_u32(bytes, base + 4 * per_difat)?;
        }
        Some(ole)
    }

    fn sector_size(&self) -> usize {
        1 << self.sector_shift
    }

    /// Sector 0 follows the header, which occupies one sector's worth of space.
    fn sector_offset(&self, sector: u32) -> Option<usize> {
        if sector > MAX_REGULAR_SECTOR {
            return None;
        }
        let offset = (usize::try_from(sector).ok()? + 1).checked_mul(self.sector_size())?;
        (offset < self.bytes.len()).then_some(offset)
    }

    fn next_sector(&self, sector: u32) -> Option<u32> {
        let per_fat = self.sector_size() / 4;
        let index = usize::try_from(sector).ok()?;
        let fat_sector = *self.fat_sectors.get(index / per_fat)?;
        le_u32(
            self.bytes,
            self.sector_offset(fat_sector)? + 4 * (index % per_fat),
        )
    }

    /// Byte offsets of the directory sectors, in chain order.
    fn directory_sectors(&self) -> Option<Vec<usize>> {
        let limit = self.bytes.len() / self.sector_size();
        let mut sectors = Vec::new();
        let mut sector = le_u32(self.bytes, 0x30)?;
        while sector != END_OF_CHAIN {
            // A chain longer than the file has sectors is a loop.
            if sectors.len() >= limit {
                return None;
            }
            sectors.push(self.sector_offset(sector)?);
            sector = self.next_sector(sector)?;
        }
        Some(sectors)
    }

    /// Marks found among the root storage's direct children. The children form a
    /// red-black tree through the left/right sibling fields; a child's own `child` field
    /// leads into a sub-storage, which is deliberately not followed.
    fn root_marks(&self) -> Option<Vec<OleMark>> {
        let directory = self.directory_sectors()?;
        let per_sector = self.sector_size() / 128;
        let entry = |id: u32| -> Option<&[u8]> {
            let id = usize::try_from(id).ok()?;
            let start = directory.get(id / per_sector)? + (id % per_sector) * 128;
            self.bytes.get(start..start + 128)
        };
        let root = entry(0)?;
        if root.get(66) != Some(&OLE_ROOT) {
            return None;
        }
        let mut marks = Vec::new();
        let mut pending = vec![le_u32(root, 76)?];
        let mut visited = 0usize;
        while let Some(id) = pending.pop() {
            if id == NO_STREAM {
                continue;
            }
            visited += 1;
            if visited > directory.len() * per_sector {
                return None; // a cycle in the tree
            }
            let child = entry(id)?;
            pending.push(le_u32(child, 68)?);
            pending.push(le_u32(child, 72)?);
            if let Some(mark) = entry_mark(child)
                && !marks.contains(&mark)
            {
                marks.push(mark);
            }
        }
        Some(marks)
    }
}

// ---------------------------------------------------------------- ZIP (DOCX, XLSX, PPTX)

/// An OOXML package is a ZIP with `[Content_Types].xml` at its root and the main
/// application's parts under `word/`, `xl/` or `ppt/`. Neither alone is enough: other
/// ZIP-based formats carry a content-types part too, and a plain ZIP can hold a folder
/// called `word`.
fn ooxml(bytes: &[u8], filename: Option<&str>) -> Option<DetectedMedia> {
    let names = zip_entry_names(bytes);
    let has = |prefix: &[u8]| {
        names.iter().any(|name| {
            name.get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        })
    };
    let is_macro_project = |name: &&[u8]| {
        name.len() >= 14 && name[name.len() - 14..].eq_ignore_ascii_case(b"vbaProject.bin")
    };
    if !names
        .iter()
        .any(|name| name.eq_ignore_ascii_case(b"[Content_Types].xml"))
        || names.iter().any(is_macro_project)
    {
        return None;
    }
    let parts: [(&[u8], DetectedMedia); 3] = [(b"word/", DOCX), (b"xl/", XLSX), (b"ppt/", PPTX)];
    let candidates: Vec<DetectedMedia> = parts
        .into_iter()
        .filter(|(prefix, _)| has(prefix))
        .map(|(_, format)| format)
        .collect();
    tie_break(&candidates, filename)
}

/// Entry names from the central directory, which is authoritative. When it cannot be
/// read (truncated file, ZIP64), the local file headers are walked from the start.
fn zip_entry_names(bytes: &[u8]) -> Vec<&[u8]> {
    let central = zip_central_names(bytes).unwrap_or_default();
    if central.is_empty() {
        zip_local_names(bytes)
    } else {
        central
    }
}

fn zip_central_names(bytes: &[u8]) -> Option<Vec<&[u8]>> {
    // The end-of-central-directory record is 22 bytes plus a comment of up to 64 KiB.
    let last = bytes.len().checked_sub(22)?;
    let eocd = (last.saturating_sub(0xFFFF)..=last)
        .rev()
        .find(|&at| has_at(bytes, at, b"PK\x05\x06"))?;
    let entries = le_u16(bytes, eocd + 10)?;
    let mut at = usize::try_from(le_u32(bytes, eocd + 16)?).ok()?;
    let mut names = Vec::with_capacity(usize::from(entries));
    for _ in 0..entries {
        if !has_at(bytes, at, b"PK\x01\x02") {
            break;
        }
        let name_len = usize::from(le_u16(bytes, at + 28)?);
        let extra_len = usize::from(le_u16(bytes, at + 30)?);
        let comment_len = usize::from(le_u16(bytes, at + 32)?);
        names.push(bytes.get(at + 46..at + 46 + name_len)?);
        at += 46 + name_len + extra_len + comment_len;
    }
    Some(names)
}

fn zip_local_names(bytes: &[u8]) -> Vec<&[u8]> {
    let mut names = Vec::new();
    let mut at = 0usize;
    while has_at(bytes, at, ZIP_LOCAL) {
        let (Some(flags), Some(compressed), Some(name_len), Some(extra_len)) = (
            le_u16(bytes, at + 6),
            le_u32(bytes, at + 18),
            le_u16(bytes, at + 26),
            le_u16(bytes, at + 28),
        ) else {
            break;
        };
        let name_start = at + 30;
        let name_end = name_start + usize::from(name_len);
        let Some(name) = bytes.get(name_start..name_end) else {
            break;
        };
        names.push(name);
        // With a data descriptor (flag bit 3) the size comes after the data, so the next
        // header cannot be found from here.
        let Ok(compressed) = usize::try_from(compressed) else {
            break;
        };
        if flags & 0x08 != 0 && compressed == 0 {
            break;
        }
        // Saturating: a forged size must end the walk, not wrap around on 32-bit targets.
        at = name_end
            .saturating_add(usize::from(extra_len))
            .saturating_add(compressed);
    }
    names
}

// ---------------------------------------------------------------- text

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Non-empty UTF-8 without control characters other than tab, line feed, carriage
/// return and form feed, and not HTML/SVG/script markup, which a viewer could render
/// as active content.
fn is_plain_text(bytes: &[u8]) -> bool {
    let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    !body.is_empty()
        && body
            .iter()
            .all(|&b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r' | 0x0C))
        && std::str::from_utf8(body).is_ok()
        && !is_markup(body)
}

/// Text that opens with a tag and contains an HTML, SVG, doctype or script tag anywhere
/// (an XML declaration or a comment may come before `<svg`).
fn is_markup(text: &[u8]) -> bool {
    if !text.trim_ascii_start().starts_with(b"<") {
        return false;
    }
    const TAGS: [&[u8]; 4] = [b"<html", b"<svg", b"<!doctype", b"<script"];
    TAGS.iter().any(|tag| {
        text.windows(tag.len())
            .any(|window| window.eq_ignore_ascii_case(tag))
    })
}

/// Keeps a display name and nothing that could look like a path, break a header or reorder
/// what the reader sees (a right-to-left override shows "fatura\u{202E}fdp.exe" as
/// "faturaexe.pdf"). Used for uploads and for customers' document names alike.
pub fn sanitize_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let clean: String = base
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c) && *c != '"')
        .take(200)
        .collect();
    if clean.trim().is_empty() || clean == "." || clean == ".." {
        "arquivo".into()
    } else {
        clean
    }
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ------------------------------------------------------------ fixtures

    const PNG_BYTES: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
    const JPEG_BYTES: &[u8] = b"\xFF\xD8\xFF\xE0\0\x10JFIF\0\x01";
    const WEBP_BYTES: &[u8] = b"RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0\x2f\0\0\0\x10";
    const AMR_BYTES: &[u8] = b"#!AMR\n\x3c\x48\xf5\x1f";
    const PDF_BYTES: &[u8] = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj\n";
    /// MPEG-1 layer III, 128 kbit/s, 44.1 kHz, no padding: 417-byte frames.
    const MP3_HEADER: [u8; 4] = [0xFF, 0xFB, 0x90, 0x64];

    fn mp3_frames(count: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..count {
            out.extend_from_slice(&MP3_HEADER);
            out.resize(out.len() + 417 - 4, 0x55);
        }
        out
    }

    fn id3_tag(body_len: u8) -> Vec<u8> {
        let mut tag = b"ID3\x04\x00\x00\x00\x00\x00".to_vec();
        tag.push(body_len);
        tag.extend(std::iter::repeat_n(b'T', usize::from(body_len)));
        tag
    }

    /// AAC-LC, 44.1 kHz, stereo, no CRC, `len`-byte frames.
    fn adts_frames(sync: u8, count: usize, len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..count {
            let header_len = if sync & 1 == 1 { 7 } else { 9 };
            out.extend_from_slice(&[
                0xFF,
                sync,
                0x50,
                0x80 | ((len >> 11) & 0b11) as u8,
                ((len >> 3) & 0xFF) as u8,
                (((len & 0b111) << 5) as u8) | 0x1F,
                0xFC,
            ]);
            out.resize(out.len() + len - 7, 0x21);
            assert!(len >= header_len);
        }
        out
    }

    fn ogg_first_page(packet: &[u8]) -> Vec<u8> {
        let mut page = b"OggS\x00\x02".to_vec();
        page.extend_from_slice(&[0; 20]); // granule, serial, sequence, checksum
        page.push(1); // one segment
        page.push(u8::try_from(packet.len()).expect("short packet"));
        page.extend_from_slice(packet);
        page
    }

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let len = 16 + 4 * compatible.len();
        let mut out = u32::try_from(len)
            .expect("small box")
            .to_be_bytes()
            .to_vec();
        out.extend_from_slice(b"ftyp");
        out.extend_from_slice(major);
        out.extend_from_slice(&[0, 0, 2, 0]);
        for brand in compatible {
            out.extend_from_slice(*brand);
        }
        out.extend_from_slice(b"\0\0\0\x08free");
        out
    }

    /// One OLE2 directory entry: name, object type, left, right, child.
    type Entry<'a> = (&'a str, u8, u32, u32, u32);
    const NONE: u32 = NO_STREAM;

    /// A well-formed compound file: header, one FAT sector (sector 0), then the
    /// directory in sectors 1.. chained through the FAT.
    fn ole(sector_shift: u16, entries: &[Entry]) -> Vec<u8> {
        let sector = 1usize << sector_shift;
        let per_sector = sector / 128;
        let dir_sectors = entries.len().div_ceil(per_sector);
        let mut out = vec![0u8; sector * (2 + dir_sectors)];
        out[..8].copy_from_slice(OLE_MAGIC);
        let put16 = |out: &mut Vec<u8>, at: usize, v: u16| {
            out[at..at + 2].copy_from_slice(&v.to_le_bytes());
        };
        let put32 = |out: &mut Vec<u8>, at: usize, v: u32| {
            out[at..at + 4].copy_from_slice(&v.to_le_bytes());
        };
        put16(&mut out, 0x18, 0x3E);
        put16(&mut out, 0x1A, if sector_shift == 9 { 3 } else { 4 });
        put16(&mut out, 0x1C, 0xFFFE);
        put16(&mut out, 0x1E, sector_shift);
        put16(&mut out, 0x20, 6);
        put32(&mut out, 0x2C, 1); // FAT sectors
        put32(&mut out, 0x30, 1); // first directory sector
        put32(&mut out, 0x38, 4096);
        put32(&mut out, 0x3C, END_OF_CHAIN);
        put32(&mut out, 0x44, END_OF_CHAIN);
        put32(&mut out, 0x4C, 0); // the FAT is sector 0
        for i in 1..HEADER_DIFAT_ENTRIES {
            put32(&mut out, 0x4C + 4 * i, NONE);
        }
        let fat = sector;
        for i in 0..sector / 4 {
            put32(&mut out, fat + 4 * i, NONE); // free
        }
        put32(&mut out, fat, 0xFFFF_FFFD); // FAT sector marker
        for s in 1..=dir_sectors {
            let next = if s == dir_sectors {
                END_OF_CHAIN
            } else {
                u32::try_from(s + 1).expect("few sectors")
            };
            put32(&mut out, fat + 4 * s, next);
        }
        for (id, &(name, ty, left, right, child)) in entries.iter().enumerate() {
            let at = 2 * sector + id * 128;
            for (i, unit) in name.encode_utf16().enumerate() {
                put16(&mut out, at + 2 * i, unit);
            }
            let name_len = u16::try_from((name.encode_utf16().count() + 1) * 2).expect("short");
            put16(&mut out, at + 64, name_len);
            out[at + 66] = ty;
            out[at + 67] = 1; // black
            put32(&mut out, at + 68, left);
            put32(&mut out, at + 72, right);
            put32(&mut out, at + 76, child);
            put32(&mut out, at + 116, END_OF_CHAIN);
        }
        out
    }

    /// A root whose direct children are `streams`, chained through right siblings.
    fn ole_with_streams(names: &[&str]) -> Vec<u8> {
        let mut entries: Vec<Entry> = vec![("Root Entry", OLE_ROOT, NONE, NONE, 1)];
        for (i, name) in names.iter().enumerate() {
            let right = if i + 1 < names.len() {
                u32::try_from(i + 2).expect("few")
            } else {
                NONE
            };
            entries.push((name, OLE_STREAM, NONE, right, NONE));
        }
        ole(9, &entries)
    }

    /// A Word file with an Excel chart embedded in `ObjectPool/_1234/Workbook`.
    fn word_with_embedded_workbook() -> Vec<u8> {
        ole(
            9,
            &[
                ("Root Entry", OLE_ROOT, NONE, NONE, 2),
                ("\u{1}CompObj", OLE_STREAM, NONE, NONE, NONE),
                ("ObjectPool", OLE_STORAGE, 1, 3, 4),
                ("WordDocument", OLE_STREAM, NONE, NONE, NONE),
                ("_1234", OLE_STORAGE, NONE, NONE, 5),
                ("Workbook", OLE_STREAM, NONE, NONE, NONE),
            ],
        )
    }

    /// Breaks the header's directory pointer so only the aligned scan can read it.
    fn break_directory(mut file: Vec<u8>) -> Vec<u8> {
        file[0x30..0x34].copy_from_slice(&0x00AB_CDEFu32.to_le_bytes());
        file
    }

    struct ZipEntry<'a> {
        name: &'a str,
        data: &'a [u8],
        /// Sizes written in a trailing data descriptor instead of the local header.
        descriptor: bool,
    }

    fn stored(name: &str) -> ZipEntry<'_> {
        ZipEntry {
            name,
            data: b"<x/>",
            descriptor: false,
        }
    }

    /// A stored (uncompressed) ZIP, with or without its central directory.
    fn zip(entries: &[ZipEntry], central: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut directory = Vec::new();
        for e in entries {
            let offset = u32::try_from(out.len()).expect("small");
            let size = u32::try_from(e.data.len()).expect("small");
            let name_len = u16::try_from(e.name.len()).expect("short");
            let flags: u16 = if e.descriptor { 0x08 } else { 0 };
            let local_size = if e.descriptor { 0 } else { size };
            out.extend_from_slice(ZIP_LOCAL);
            out.extend_from_slice(&20u16.to_le_bytes());
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&[0; 10]); // method 0, time, date, crc
            out.extend_from_slice(&local_size.to_le_bytes());
            out.extend_from_slice(&local_size.to_le_bytes());
            out.extend_from_slice(&name_len.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(e.name.as_bytes());
            out.extend_from_slice(e.data);
            if e.descriptor {
                out.extend_from_slice(b"PK\x07\x08\0\0\0\0");
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(&size.to_le_bytes());
            }
            directory.extend_from_slice(b"PK\x01\x02");
            directory.extend_from_slice(&20u16.to_le_bytes());
            directory.extend_from_slice(&20u16.to_le_bytes());
            directory.extend_from_slice(&flags.to_le_bytes());
            directory.extend_from_slice(&[0; 10]);
            directory.extend_from_slice(&size.to_le_bytes());
            directory.extend_from_slice(&size.to_le_bytes());
            directory.extend_from_slice(&name_len.to_le_bytes());
            directory.extend_from_slice(&[0; 12]); // extra, comment, disk, attributes
            directory.extend_from_slice(&offset.to_le_bytes());
            directory.extend_from_slice(e.name.as_bytes());
        }
        if central {
            let count = u16::try_from(entries.len()).expect("few");
            let cd_offset = u32::try_from(out.len()).expect("small");
            let cd_size = u32::try_from(directory.len()).expect("small");
            out.extend_from_slice(&directory);
            out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&cd_size.to_le_bytes());
            out.extend_from_slice(&cd_offset.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
        }
        out
    }

    fn office_zip(main_part: &str) -> Vec<u8> {
        zip(
            &[
                stored("[Content_Types].xml"),
                stored("_rels/.rels"),
                stored(main_part),
            ],
            true,
        )
    }

    fn mime(bytes: &[u8], filename: Option<&str>) -> &'static str {
        detect(bytes, filename)
            .unwrap_or_else(|e| panic!("expected a detection, got {e}"))
            .mime_type
    }

    fn refused(bytes: &[u8], filename: Option<&str>) -> bool {
        detect(bytes, filename) == Err(MediaError::Unsupported { accepted: ACCEPTED })
    }

    // ------------------------------------------------------------ accepted types

    #[test]
    fn images_and_stickers() {
        assert_eq!(detect(PNG_BYTES, None), Ok(PNG));
        assert_eq!(detect(JPEG_BYTES, None), Ok(JPEG));
        let webp = detect(WEBP_BYTES, None).unwrap();
        assert_eq!(
            (webp.kind, webp.mime_type),
            (MediaKind::Sticker, "image/webp")
        );
        for chunk in [b"VP8 ", b"VP8X"] {
            let mut other = WEBP_BYTES.to_vec();
            other[12..16].copy_from_slice(chunk);
            assert_eq!(mime(&other, None), "image/webp");
        }
    }

    #[test]
    fn mp3_with_and_without_id3() {
        assert_eq!(detect(&mp3_frames(3), None), Ok(MP3));
        // A single frame, and a file that ends right after the first frame.
        assert_eq!(mime(&mp3_frames(1), None), "audio/mpeg");
        let mut tagged = id3_tag(20);
        tagged.extend(mp3_frames(2));
        assert_eq!(mime(&tagged, None), "audio/mpeg");
        // Two stacked tags and zero padding after them.
        let mut stacked = id3_tag(5);
        stacked.extend(id3_tag(7));
        stacked.extend([0; 13]);
        stacked.extend(mp3_frames(2));
        assert_eq!(mime(&stacked, None), "audio/mpeg");
        // MPEG-2 layer III (22.05 kHz, 64 kbit/s: 208-byte frames).
        let mut mpeg2 = Vec::new();
        for _ in 0..2 {
            mpeg2.extend_from_slice(&[0xFF, 0xF3, 0x80, 0xC4]);
            mpeg2.resize(mpeg2.len() + 204, 0);
        }
        assert_eq!(mime(&mpeg2, None), "audio/mpeg");
    }

    #[test]
    fn aac_adts() {
        assert_eq!(detect(&adts_frames(0xF1, 3, 100), None), Ok(AAC));
        assert_eq!(mime(&adts_frames(0xF9, 3, 100), None), "audio/aac");
        let mut tagged = id3_tag(10);
        tagged.extend(adts_frames(0xF1, 2, 64));
        assert_eq!(mime(&tagged, None), "audio/aac");
    }

    #[test]
    fn ogg_opus_and_amr() {
        let opus = ogg_first_page(b"OpusHead\x01\x02\x38\x01\x80\xbb\0\0\0\0\0");
        assert_eq!(detect(&opus, None), Ok(OGG_OPUS));
        assert_eq!(detect(AMR_BYTES, None), Ok(AMR));
    }

    #[test]
    fn iso_bmff_brands() {
        assert_eq!(
            detect(&ftyp(b"M4A ", &[b"M4A ", b"mp42", b"isom"]), None),
            Ok(M4A)
        );
        assert_eq!(mime(&ftyp(b"M4B ", &[]), None), "audio/mp4");
        for brand in [
            b"isom", b"iso2", b"iso6", b"mp41", b"mp42", b"avc1", b"dash", b"MSNV", b"M4V ",
        ] {
            assert_eq!(detect(&ftyp(brand, &[b"isom"]), None), Ok(MP4), "{brand:?}");
        }
        for brand in [b"3gp4", b"3gp5", b"3g2a"] {
            assert_eq!(detect(&ftyp(brand, &[]), None), Ok(THREE_GP), "{brand:?}");
        }
    }

    #[test]
    fn pdf() {
        assert_eq!(detect(PDF_BYTES, None), Ok(PDF));
    }

    #[test]
    fn legacy_office_by_directory() {
        assert_eq!(
            detect(&ole_with_streams(&["WordDocument", "1Table"]), None),
            Ok(DOC)
        );
        assert_eq!(detect(&ole_with_streams(&["Workbook"]), None), Ok(XLS));
        assert_eq!(detect(&ole_with_streams(&["Book"]), None), Ok(XLS));
        let ppt = ole_with_streams(&["Current User", "PowerPoint Document", "Pictures"]);
        assert_eq!(detect(&ppt, None), Ok(PPT));
        // The content wins over a misleading name.
        assert_eq!(detect(&ppt, Some("slides.doc")), Ok(PPT));
        // 4096-byte sectors (version 4 files).
        let v4 = ole(
            12,
            &[
                ("Root Entry", OLE_ROOT, NONE, NONE, 1),
                ("Workbook", OLE_STREAM, NONE, NONE, NONE),
            ],
        );
        assert_eq!(detect(&v4, None), Ok(XLS));
    }

    #[test]
    fn directory_spanning_two_sectors() {
        let names = [
            "\u{5}SummaryInformation",
            "\u{5}DocumentSummaryInformation",
            "1Table",
            "Data",
            "\u{1}CompObj",
            "WordDocument",
        ];
        assert_eq!(detect(&ole_with_streams(&names), None), Ok(DOC));
    }

    #[test]
    fn embedded_objects_do_not_change_the_type() {
        let doc = word_with_embedded_workbook();
        assert_eq!(detect(&doc, None), Ok(DOC));
        assert_eq!(detect(&doc, Some("relatorio.xls")), Ok(DOC));
    }

    #[test]
    fn damaged_directory_falls_back_to_scan_and_name() {
        let doc = break_directory(ole_with_streams(&["WordDocument"]));
        assert!(OleFile::parse(&doc).and_then(|o| o.root_marks()).is_none());
        assert_eq!(detect(&doc, None), Ok(DOC));
        // The scan sees the embedded workbook too; only then does the name decide.
        let both = break_directory(word_with_embedded_workbook());
        assert_eq!(detect(&both, None), Ok(DOC));
        assert_eq!(detect(&both, Some("C:\\docs\\planilha.XLS")), Ok(XLS));
        assert_eq!(detect(&both, Some("apresentacao.ppt")), Ok(DOC));
    }

    #[test]
    fn password_protected_ooxml() {
        let encrypted = ole_with_streams(&["EncryptionInfo", "EncryptedPackage"]);
        assert_eq!(detect(&encrypted, Some("boleto.xlsx")), Ok(XLSX));
        assert_eq!(detect(&encrypted, Some("deck.pptx")), Ok(PPTX));
        assert_eq!(detect(&encrypted, None), Ok(DOCX));
    }

    #[test]
    fn difat_chain_is_followed() {
        // 110 FAT sectors: 109 listed in the header, the last one in a DIFAT sector.
        let mut file = ole_with_streams(&["WordDocument"]);
        let difat_sector = u32::try_from(file.len() / 512 - 1).expect("few sectors");
        file.extend(vec![0xEE; 512]);
        file[0x2C..0x30].copy_from_slice(&110u32.to_le_bytes());
        file[0x44..0x48].copy_from_slice(&difat_sector.to_le_bytes());
        file.extend(vec![0; 512 * 110]); // so 110 FAT sectors are plausible
        let at = (usize::try_from(difat_sector).expect("small") + 1) * 512;
        file[at..at + 4].copy_from_slice(&7u32.to_le_bytes());
        file[at + 508..at + 512].copy_from_slice(&END_OF_CHAIN.to_le_bytes());
        let parsed = OleFile::parse(&file).expect("parses");
        assert_eq!(parsed.fat_sectors.len(), 110);
        assert_eq!(parsed.fat_sectors[109], 7);
        // A header claiming more FAT sectors than the file has is not believed.
        file[0x2C..0x30].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(OleFile::parse(&file).is_none());
    }

    #[test]
    fn ooxml_packages() {
        assert_eq!(detect(&office_zip("word/document.xml"), None), Ok(DOCX));
        assert_eq!(detect(&office_zip("xl/workbook.xml"), None), Ok(XLSX));
        assert_eq!(detect(&office_zip("ppt/presentation.xml"), None), Ok(PPTX));
        // Only local headers (no central directory), and sizes in data descriptors.
        let local_only = zip(
            &[stored("[Content_Types].xml"), stored("xl/workbook.xml")],
            false,
        );
        assert_eq!(detect(&local_only, None), Ok(XLSX));
        let streamed = zip(
            &[
                ZipEntry {
                    descriptor: true,
                    ..stored("[Content_Types].xml")
                },
                ZipEntry {
                    descriptor: true,
                    ..stored("ppt/presentation.xml")
                },
            ],
            true,
        );
        assert_eq!(detect(&streamed, None), Ok(PPTX));
    }

    #[test]
    fn plain_text() {
        assert_eq!(detect(b"Ola, segue o protocolo 123.\n", None), Ok(TXT));
        let utf8 = "Olá!\tPedido nº 5\r\n\x0cpágina 2 — ✓".as_bytes();
        assert_eq!(mime(utf8, None), "text/plain");
        assert_eq!(mime(b"\xEF\xBB\xBFcom BOM", None), "text/plain");
        assert_eq!(mime(b"<3 obrigado!", None), "text/plain");
        assert_eq!(mime(b"ID3 is a tag format", None), "text/plain");
        assert_eq!(
            mime(b"<?xml version=\"1.0\"?><pedido/>", None),
            "text/plain"
        );
    }

    // ------------------------------------------------------------ refusals

    #[test]
    fn renamed_executable_is_refused() {
        let exe = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xFF\xFF\0\0\xB8\0\0\0\0\0\0\0@\0";
        assert!(refused(exe, Some("fatura.pdf")));
        assert!(refused(b"\x7FELF\x02\x01\x01\0", Some("foto.jpg")));
        assert!(refused(b"GIF89a\x01\0\x01\0", Some("foto.png")));
        assert!(refused(b"Rar!\x1A\x07\x01\0", Some("contrato.docx")));
        // An MSI installer is OLE2 without any Office stream.
        let msi = ole_with_streams(&["\u{4840}\u{3F3F}\u{4577}", "SummaryInfo"]);
        assert!(refused(&msi, Some("contrato.doc")));
        assert!(refused(&msi, None));
    }

    #[test]
    fn empty_file_is_refused() {
        assert_eq!(detect(b"", Some("nota.txt")), Err(MediaError::Empty));
        assert_eq!(validate_upload(b"", None), Err(MediaError::Empty));
        assert!(refused(UTF8_BOM, Some("nota.txt")));
    }

    #[test]
    fn non_office_zips_are_refused() {
        let plain = zip(&[stored("fotos/1.jpg"), stored("leia-me.txt")], true);
        assert!(refused(&plain, Some("fotos.docx")));
        // Content types alone, or an Office folder without content types.
        assert!(refused(&zip(&[stored("[Content_Types].xml")], true), None));
        assert!(refused(&zip(&[stored("word/document.xml")], true), None));
        // A ZIP that merely stores a DOCX: the inner headers are data, not entries.
        let inner = office_zip("word/document.xml");
        let outer = zip(
            &[ZipEntry {
                name: "fatura.docx",
                data: &inner,
                descriptor: false,
            }],
            true,
        );
        assert!(refused(&outer, Some("fatura.docx")));
        // ODF packages (ODT) have a mimetype entry and no [Content_Types].xml.
        let odt = zip(&[stored("mimetype"), stored("content.xml")], true);
        assert!(refused(&odt, Some("carta.docx")));
    }

    #[test]
    fn macro_documents_are_refused() {
        let docm = zip(
            &[
                stored("[Content_Types].xml"),
                stored("word/document.xml"),
                stored("word/vbaProject.bin"),
            ],
            true,
        );
        assert!(refused(&docm, Some("pedido.docx")));
        let xls_macros = ole(
            9,
            &[
                ("Root Entry", OLE_ROOT, NONE, NONE, 1),
                ("Workbook", OLE_STREAM, NONE, 2, NONE),
                ("_VBA_PROJECT_CUR", OLE_STORAGE, NONE, NONE, NONE),
            ],
        );
        assert!(refused(&xls_macros, Some("planilha.xls")));
        let doc_macros = ole(
            9,
            &[
                ("Root Entry", OLE_ROOT, NONE, NONE, 1),
                ("Macros", OLE_STORAGE, NONE, 2, NONE),
                ("WordDocument", OLE_STREAM, NONE, NONE, NONE),
            ],
        );
        assert!(refused(&doc_macros, None));
    }

    #[test]
    fn ogg_without_opus_is_refused() {
        let vorbis = ogg_first_page(b"\x01vorbis\0\0\0\0\x02\x44\xac\0\0");
        assert!(refused(&vorbis, Some("audio.ogg")));
        let mut not_first_page = ogg_first_page(b"OpusHead\x01\x02");
        not_first_page[5] = 0; // BOS flag cleared
        assert!(refused(&not_first_page, None));
    }

    #[test]
    fn other_containers_are_refused() {
        assert!(refused(b"RIFF\x24\0\0\0WAVEfmt ", Some("audio.mp3")));
        for brand in [b"qt  ", b"heic", b"avif", b"M4P "] {
            assert!(refused(
                &ftyp(brand, &[b"isom", b"iso8"]),
                Some("video.mp4")
            ));
        }
        // A box length that does not fit the file or the brand layout.
        let mut bad = ftyp(b"isom", &[]);
        bad[3] = 0x11;
        assert!(refused(&bad, None));
        bad[3] = 0xF0;
        assert!(refused(&bad, None));
    }

    #[test]
    fn mpeg_look_alikes_are_refused() {
        // Layer II, a reserved sample rate, and a valid header followed by garbage.
        assert!(refused(&[0xFF, 0xFD, 0x90, 0x64, 0, 0], None));
        assert!(refused(&[0xFF, 0xFB, 0x9C, 0x64, 0, 0], None));
        let mut broken = mp3_frames(1);
        broken.extend_from_slice(b"MZ\x90\0");
        assert!(refused(&broken, Some("musica.mp3")));
        // An ID3 tag followed by something that is not audio, or running past the end.
        let mut tag_then_exe = id3_tag(4);
        tag_then_exe.extend_from_slice(b"MZ\x90\0\x03\0");
        assert!(refused(&tag_then_exe, Some("musica.mp3")));
        assert!(refused(b"ID3\x03\0\0\0\0\x7F\x7F\x01\x02", None));
    }

    #[test]
    fn text_with_controls_or_bad_utf8_is_refused() {
        assert!(refused(b"linha 1\0linha 2", Some("nota.txt")));
        assert!(refused(b"cor \x1b[31mvermelha", Some("nota.txt")));
        assert!(refused(b"latin-1 ol\xe1", Some("nota.txt")));
        // UTF-16 text is full of NULs.
        assert!(refused(b"\xFF\xFEo\0l\0a\0", Some("nota.txt")));
    }

    #[test]
    fn markup_is_refused() {
        for text in [
            &b"<html><body>oi</body></html>"[..],
            b"<!DOCTYPE html>\n<p>oi",
            b"  \n<HTML>",
            b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            b"\xEF\xBB\xBF<?xml version='1.0'?>\n<!-- x -->\n<svg/>",
            b"<p>oi</p><script>alert(1)</script>",
        ] {
            assert!(
                refused(text, Some("nota.txt")),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    // ------------------------------------------------------------ inline

    #[test]
    fn images_audio_and_video_may_be_inline_with_their_sniffed_type() {
        assert_eq!(inline_mime_type(PNG_BYTES), Some("image/png"));
        assert_eq!(inline_mime_type(JPEG_BYTES), Some("image/jpeg"));
        assert_eq!(inline_mime_type(WEBP_BYTES), Some("image/webp"));
        assert_eq!(inline_mime_type(&mp3_frames(2)), Some("audio/mpeg"));
        assert_eq!(
            inline_mime_type(&adts_frames(0xF1, 2, 64)),
            Some("audio/aac")
        );
        assert_eq!(
            inline_mime_type(&ogg_first_page(b"OpusHead\x01\x02")),
            Some("audio/ogg")
        );
        assert_eq!(inline_mime_type(AMR_BYTES), Some("audio/amr"));
        assert_eq!(inline_mime_type(&ftyp(b"M4A ", &[])), Some("audio/mp4"));
        assert_eq!(inline_mime_type(&ftyp(b"isom", &[])), Some("video/mp4"));
        assert_eq!(inline_mime_type(&ftyp(b"3gp4", &[])), Some("video/3gpp"));
    }

    #[test]
    fn markup_documents_and_unknown_bytes_are_never_inline() {
        for bytes in [
            &b"<html><script>fetch('/api/auth/me')</script></html>"[..],
            b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
            b"\xEF\xBB\xBF<?xml version='1.0'?><svg/>",
            b"texto simples",
            PDF_BYTES,
            b"MZ\x90\0\x03\0",
            b"GIF89a\x01\0\x01\0",
            b"",
        ] {
            assert_eq!(
                inline_mime_type(bytes),
                None,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    // ------------------------------------------------------------ sizes

    #[test]
    fn limits_per_kind() {
        assert_eq!(max_bytes(MediaKind::Image), 5 * 1024 * 1024);
        assert_eq!(max_bytes(MediaKind::Audio), 16 * 1024 * 1024);
        assert_eq!(max_bytes(MediaKind::Video), 16 * 1024 * 1024);
        assert_eq!(max_bytes(MediaKind::Document), 100 * 1024 * 1024);
        assert_eq!(max_bytes(MediaKind::Sticker), 500 * 1024);
    }

    #[test]
    fn oversize_is_refused() {
        let limit = 5 * 1024 * 1024;
        let mut png = PNG_BYTES.to_vec();
        png.resize(limit, 0);
        assert_eq!(validate_upload(&png, Some("foto.png")), Ok(PNG));
        png.push(0);
        let err = validate_upload(&png, Some("foto.png")).unwrap_err();
        assert_eq!(
            err,
            MediaError::TooLarge {
                kind: "image",
                max_bytes: 5_242_880,
                size: 5_242_881,
            }
        );
        assert_eq!(
            err.to_string(),
            "image files may have at most 5242880 bytes; this one has 5242881"
        );
        let mut sticker = WEBP_BYTES.to_vec();
        sticker.resize(500 * 1024 + 1, 0);
        assert!(matches!(
            validate_upload(&sticker, None),
            Err(MediaError::TooLarge {
                kind: "sticker",
                ..
            })
        ));
        // Detection comes first: an oversize executable is unsupported, not too large.
        let mut exe = b"MZ".to_vec();
        exe.resize(limit + 1, 0);
        assert!(matches!(
            validate_upload(&exe, None),
            Err(MediaError::Unsupported { .. })
        ));
    }

    // ------------------------------------------------------------ API surface

    #[test]
    fn kinds_and_messages() {
        let kinds = [
            MediaKind::Image,
            MediaKind::Audio,
            MediaKind::Video,
            MediaKind::Document,
            MediaKind::Sticker,
        ];
        for kind in kinds {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(kind.as_str())
            );
        }
        let json = serde_json::to_value(detect(PDF_BYTES, None).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "document", "mime_type": "application/pdf", "extension": "pdf"})
        );
        let message = MediaError::Unsupported { accepted: ACCEPTED }.to_string();
        assert!(message.starts_with("unsupported file type; accepted: PNG, JPEG"));
        assert!(message.ends_with("PPTX, TXT"));
    }

    // ------------------------------------------------------------ properties

    /// Prefixes that commit detection to a binary format.
    fn starts_with_accepted_magic(bytes: &[u8]) -> bool {
        const MAGICS: [&[u8]; 10] = [
            PNG_MAGIC,
            b"\xFF",
            b"RIFF",
            b"OggS",
            b"#!AMR\n",
            b"%PDF-",
            OLE_MAGIC,
            ZIP_LOCAL,
            b"ID3",
            b"\xD0\xCF",
        ];
        MAGICS.iter().any(|m| bytes.starts_with(m)) || has_at(bytes, 4, b"ftyp")
    }

    fn filenames() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            proptest::sample::select(vec![
                "fatura.pdf",
                "foto.jpg",
                "foto.png",
                "nota.txt",
                "carta.doc",
                "carta.docx",
                "planilha.xls",
                "planilha.xlsx",
                "slides.ppt",
                "slides.pptx",
                "audio.ogg",
                "musica.mp3",
                "video.mp4",
                "sticker.webp",
                "sem-extensao",
                ".xls",
            ])
            .prop_map(|s| Some(s.to_owned())),
            "[a-zA-Z0-9 ./\\\\_-]{0,24}".prop_map(Some),
        ]
    }

    fn prefixes() -> Vec<Vec<u8>> {
        vec![
            Vec::new(),
            PNG_BYTES.to_vec(),
            WEBP_BYTES[..12].to_vec(),
            b"OggS".to_vec(),
            ogg_first_page(b"\x01vorbis"),
            MP3_HEADER.to_vec(),
            id3_tag(3),
            ftyp(b"qt  ", &[]),
            ftyp(b"mp42", &[]),
            OLE_MAGIC.to_vec(),
            ole_with_streams(&["SummaryInfo"]),
            break_directory(word_with_embedded_workbook()),
            ole_with_streams(&["EncryptedPackage"]),
            zip(&[stored("fotos/1.jpg")], false),
            zip(
                &[stored("[Content_Types].xml"), stored("word/x.xml")],
                false,
            ),
            b"texto ".to_vec(),
        ]
    }

    proptest! {
        #[test]
        fn binary_without_magic_is_refused_whatever_the_name(
            mut bytes in proptest::collection::vec(any::<u8>(), 1..512),
            nul in any::<proptest::sample::Index>(),
            name in filenames(),
        ) {
            let at = nul.index(bytes.len());
            bytes[at] = 0;
            prop_assume!(!starts_with_accepted_magic(&bytes));
            prop_assert!(detect(&bytes, name.as_deref()).is_err());
            prop_assert!(validate_upload(&bytes, name.as_deref()).is_err());
        }

        #[test]
        fn the_name_never_decides_acceptance_or_kind(
            prefix in proptest::sample::select(prefixes()),
            tail in proptest::collection::vec(any::<u8>(), 0..256),
            name in filenames(),
        ) {
            let mut bytes = prefix;
            bytes.extend(tail);
            let anonymous = detect(&bytes, None).map(|m| m.kind);
            let named = detect(&bytes, name.as_deref()).map(|m| m.kind);
            prop_assert_eq!(anonymous, named);
        }
    }
}
